from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from medsyn_site.core.forms import form_errors_text
from medsyn_site.core.progress import command_progress_bar
from medsyn_site.core.storage import releases_storage, storage_where
from review.curation.forms import CurationFilterForm
from review.releases.forms import RELEASE_FILTER_KEYS
from review.releases.services import do_create_release, release_export_run, release_folder_name, release_preview


class Command(BaseCommand):
    help = ("Freeze the releasable approved notes (optionally filtered) as the next version of a release and "
            "export it here with a progress bar (Parquet, JSONL, MedSyn CSV, dataset card, SHA-256 sums).")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--name", required=True)
        parser.add_argument("--description", default="")
        parser.add_argument("--licence", default="mit")
        parser.add_argument("--filter", action="append", default=[], metavar="KEY=VALUE",
                            help="a curation queue filter, e.g. code=J06 or model=gpt-4 (repeatable)")
        parser.add_argument("--include-real", metavar="LICENCE", default="",
                            help="also include the real notes matching the code filter, under this licence")

    def handle(self, *args, name: str, description: str, licence: str, filter: list[str], include_real: str,
               **options) -> None:
        form = CurationFilterForm(dict(item.split("=", 1) for item in filter if "=" in item),
                                  known_keys=RELEASE_FILTER_KEYS)  # an ignored key would release every note
        if not form.is_valid() or any("=" not in item for item in filter):
            raise CommandError(f"bad --filter: {form_errors_text(form) or filter}")
        filters = form.filters()
        preview = release_preview(filters=filters, include_real=bool(include_real))
        for reason, count in preview.held_back.items():
            self.stderr.write(f"held back: {count} approved note(s) {reason}")
        try:
            release = do_create_release(actor=None, name=name, filters=filters, description=description,
                                        licence=licence, include_real=bool(include_real),
                                        real_data_licence=include_real, queue_export=False)
        except ValidationError as error:
            raise CommandError(" ".join(error.messages)) from error
        with command_progress_bar(self, f"export {release}") as progress:
            release_export_run(release.pk, on_progress=progress)
        where = storage_where(releases_storage(), release_folder_name(release))
        self.stdout.write(self.style.SUCCESS(f"{release}: {release.note_count} notes in {where}"))
