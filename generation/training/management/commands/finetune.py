from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from generation.models import ModelConfig
from medsyn_site.core.models import JobStatus
from medsyn_site.core.progress import command_progress_bar

from ...finetune import FINETUNE_PARAMETERS, do_start_finetune, finetune_defaults, finetune_job_run
from ...lora import CPU_WARNING
from ...models import FineTuneJob, InstructionSet

FLOATS = frozenset({"lora_dropout", "learning_rate", "epochs"})


def instruction_set_find(spec: str) -> InstructionSet:
    """NAME (its newest ready version) or NAME:VERSION."""
    name, _colon, version = spec.rpartition(":") if ":" in spec else (spec, "", "")
    sets = InstructionSet.objects.filter(name=name)
    if version:
        if not version.isascii() or not version.isdigit():
            raise CommandError(f"--set {spec}: the version must be a number")
        found = sets.filter(version=int(version)).first()
    else:
        found = sets.filter(status=InstructionSet.Status.READY).order_by("-version").first()
    if found is None:
        raise CommandError(f"--set {spec}: no such instruction set")
    return found


class Command(BaseCommand):
    help = ("Fine-tune a local base model with LoRA on an instruction set, here in this process, with a progress "
            "bar: the same job as the web page starts on the gpu worker (checkpoints, metrics, and the new model "
            "registered at the end). --resume JOB continues an unfinished job from its last checkpoint.")

    def add_arguments(self, parser) -> None:
        parser.add_argument("--base", help="the base model configuration's name (a local model)")
        parser.add_argument("--set", dest="instruction_set", metavar="NAME[:VERSION]",
                            help="the instruction set (its newest ready version without :VERSION)")
        parser.add_argument("--name", help="the name of the new model configuration")
        parser.add_argument("--resume", type=int, metavar="JOB", help="continue this unfinished job instead")
        defaults = finetune_defaults()
        for name in FINETUNE_PARAMETERS:
            option = "--" + name.replace("_", "-")
            if name == "target_modules":
                parser.add_argument(option, help=f"comma-separated (default {','.join(defaults[name])})")
            else:
                parser.add_argument(option, type=float if name in FLOATS else int,
                                    help=f"default {defaults[name]}")

    def handle(self, *args, **options) -> None:
        if options["resume"] is not None:
            job = FineTuneJob.objects.filter(pk=options["resume"]).first()
            if job is None or job.finished:
                raise CommandError(f"fine-tuning job {options['resume']} does not exist or has finished")
        else:
            job = self._start(options)
        with command_progress_bar(self, f"fine-tune {job.name}", unit="step") as progress:
            finetune_job_run(job.pk, progress=progress)
        job.refresh_from_db()
        if CPU_WARNING in job.run_info.get("warnings", []):
            self.stderr.write(f"warning: {CPU_WARNING}")
        if job.status != JobStatus.DONE:
            raise CommandError(f"fine-tuning job {job.pk} {job.status}: {job.error or 'stopped'}")
        last = job.metrics[-1] if job.metrics else {}
        self.stdout.write(self.style.SUCCESS(
            f"job {job.pk}: {job.progress_done} steps, train loss {last.get('train_loss', float('nan')):.4f}; "
            f"registered the model {job.result_config.name!r} (adapter {job.result_config.adapter_path})"))

    def _start(self, options: dict) -> FineTuneJob:
        missing = [f"--{name}" for name in ("base", "instruction_set", "name") if not options[name]]
        if missing:
            raise CommandError(f"{', '.join(missing).replace('instruction_set', 'set')} required (or --resume JOB)")
        base = ModelConfig.objects.filter(name=options["base"]).first()
        if base is None:
            raise CommandError(f"--base {options['base']}: no such model configuration")
        parameters = {name: options[name] for name in FINETUNE_PARAMETERS if options[name] is not None}
        try:
            return do_start_finetune(base_config=base, instruction_set=instruction_set_find(options["instruction_set"]),
                                     name=options["name"], parameters=parameters, actor=None, enqueue=False)
        except ValidationError as error:
            problems = ([f"{field}: {' '.join(messages)}" for field, messages in error.message_dict.items()]
                        if hasattr(error, "error_dict") else error.messages)
            raise CommandError("; ".join(problems)) from None
