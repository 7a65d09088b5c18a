from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from generation.models import PromptTemplate
from medsyn_site.core.progress import command_progress_bar

from ...instruction_sets import (
    DEFAULT_VALIDATION_SHARE,
    do_build_instruction_set,
    instruction_set_build_run,
    instruction_set_compute,
    instruction_set_request_from,
)
from ...models import InstructionSet


def _template_id(token: str) -> int:
    """A template as its id, NAME (its current version) or NAME@VERSION."""
    if token.isascii() and token.isdigit():
        return int(token)
    name, _sep, version = token.partition("@")
    templates = PromptTemplate.objects.filter(name=name)
    templates = templates.filter(version=int(version)) if version.isascii() and version.isdigit() else (
        templates.filter(is_current=True) if not version else templates.none())
    template = templates.first()
    if template is None:
        raise CommandError(f"no prompt template {token!r} (give an id, NAME or NAME@VERSION)")
    return template.pk


class Command(BaseCommand):
    help = ("Build the next version of an instruction set from the real notes of a split (never dev or test) and the "
            "current graph, with a progress bar: Alpaca JSONL plus a `datasets` folder under INSTRUCTION_SETS_DIR. "
            "--preview only counts.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", default="", help="required unless --preview")
        parser.add_argument("--split", default="train")
        parser.add_argument("--source-dataset", default="", help="only the split's notes of this data set")
        parser.add_argument("--cap-per-category", type=int, default=None, help="records per category (default: none)")
        parser.add_argument("--validation-share", type=float, default=DEFAULT_VALIDATION_SHARE)
        parser.add_argument("--seed", type=int, default=17)
        parser.add_argument("--templates", nargs="+", default=[], metavar="TEMPLATE",
                            help="one per variant: an id, NAME (its current version) or NAME@VERSION; default: the "
                                 "current Russian templates")
        parser.add_argument("--preview", action="store_true", help="count the records, write nothing")

    def handle(self, *args, name: str, split: str, source_dataset: str, cap_per_category: int | None,
               validation_share: float, seed: int, templates: list[str], preview: bool, **options) -> None:
        try:
            request = instruction_set_request_from(
                {"name": name, "split": split, "source_dataset": source_dataset, "seed": seed,
                 "cap_per_category": cap_per_category, "validation_share": validation_share,
                 "templates": [_template_id(token) for token in templates]}, require_name=not preview)
            with command_progress_bar(self, "notes") as progress:
                if preview:
                    plan = instruction_set_compute(request, progress=progress)
                else:
                    created = do_build_instruction_set(request=request, actor=None, enqueue=False)
                    instruction_set_build_run(created.build.pk, on_progress=progress)
        except ValidationError as error:
            if hasattr(error, "error_dict"):
                raise CommandError("; ".join(f"--{field.replace('_', '-')}: {' '.join(messages)}"
                                             for field, messages in error.message_dict.items())) from None
            raise CommandError(" ".join(error.messages)) from None
        if preview:
            for category, parts in plan.counts["by_category"].items():
                self.stdout.write(f"{category}\t{parts['train']}\t{parts['validation']}")
            self.stdout.write(self.style.SUCCESS(
                f"{plan.total} records ({plan.n_train} train, {plan.n_validation} validation) from "
                f"{plan.provenance['source_notes']} notes; left out {plan.skipped}"))
            return
        built = InstructionSet.objects.get(pk=created.pk)
        if built.status != InstructionSet.Status.READY:
            raise CommandError(f"{built}: {built.get_status_display().lower()}: {built.error}")
        self.stdout.write(self.style.SUCCESS(
            f"{built}: {built.n_train} train + {built.n_validation} validation records in {built.file_path} "
            f"(sha256 {built.sha256}); left out {built.provenance['skipped']}"))
