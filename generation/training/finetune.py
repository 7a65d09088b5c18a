"""Fine-tuning jobs: start (with every check), cancel, and the run a gpu worker (or `manage.py finetune`) does.

The run is lora.lora_train with the job's settings in FINETUNE_DIR/<job id>; it resumes from the latest
checkpoint there, so a redelivered task (a worker killed mid-training, sent again by the sweep of core.jobs)
continues where the last checkpoint left it. On resume the metrics past that checkpoint are dropped: the steps
that follow are run again and recorded once. A finished run publishes its adapter to the adapters storage
(adapter_publish: whichever host trained it, every worker can then fetch it) and registers a new local ModelConfig
(the base model's files and settings plus the published adapter) in the same transaction that marks the job done,
so generation jobs can use it at once and a second delivery cannot register it twice.

The fine-tuned model is given at generation time the prompts it was trained on (finetune_prompt_format): MedSyn
fine-tunes on instruction prompts in the Alpaca wrapper, so a base model (Gemma 3 270M, prompt format completion)
fine-tuned on an instruction set is trained on, and registered with, the Alpaca format, and its jobs get the
instruction templates; a set built from completion templates keeps the completion format.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from generation.backends.local_backend import adapter_reference, model_location
from generation.models import ModelConfig
from medsyn_site.core.audit import audit_write
from medsyn_site.core.jobs import job_cancel, job_send_on_commit
from medsyn_site.core.models import AuditEvent, JobPhase, JobStatus
from medsyn_site.core.progress import Progress, ProgressRecorder
from medsyn_site.core.storage import (
    adapters_storage,
    folder_fetch_addressed,
    folder_publish_addressed,
    folder_workspace,
    is_folder,
    storage_where,
)

from .instruction_sets import PROMPT_STYLE_COMPLETION, instruction_set_prompt_style
from .lora import (
    ADAPTER,
    DEFAULT_TARGET_MODULES,
    CheckpointMismatch,
    RunStart,
    StepReport,
    TrainingSettings,
    lora_train,
    steps_plan,
)
from .models import FineTuneJob, InstructionSet

logger = logging.getLogger("medsyn.training")

# The job fields a user sets (form, API, command); every other field is the run's.
FINETUNE_PARAMETERS = ("lora_r", "lora_alpha", "lora_dropout", "target_modules", "learning_rate", "epochs",
                       "batch_size", "micro_batch_size", "max_length", "max_steps", "warmup_steps", "checkpoint_every",
                       "eval_every", "seed")
MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,99}$")
MAX_TARGET_MODULES = 32
HEARTBEAT_SECONDS = 30  # a step can take minutes on a CPU: the job row shows it is alive in between
RECORD_PARTS = ("train", "validation")


# --- Reading an instruction set -----------------------------------------------------------------------------------

def instruction_set_path(instruction_set: InstructionSet) -> Path:
    """Its Alpaca JSONL: file_path as stored, a relative one under INSTRUCTION_SETS_DIR."""
    path = Path(instruction_set.file_path)
    return path if path.is_absolute() else Path(settings.INSTRUCTION_SETS_DIR) / path


def instruction_set_records(instruction_set: InstructionSet) -> tuple[list[dict], list[dict]]:
    """(train records, validation records) of an instruction set's JSONL, by each record's part. ValueError when
    the file changed since it was built (its SHA-256) or a line is not a record."""
    path = instruction_set_path(instruction_set)
    data = path.read_bytes()
    if instruction_set.sha256 and hashlib.sha256(data).hexdigest() != instruction_set.sha256:
        raise ValueError(f"{path}: the file changed since the instruction set was built (SHA-256 differs)")
    parts: dict[str, list[dict]] = {part: [] for part in RECORD_PARTS}
    for number, line in enumerate(data.decode("utf-8-sig").splitlines(), start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        if not isinstance(record, dict) or not isinstance(record.get("output"), str):
            raise ValueError(f"{path}, line {number}: not an instruction record (instruction, input, output)")
        parts["validation" if record.get("part") == "validation" else "train"].append(record)
    return parts["train"], parts["validation"]


def finetune_jobs_list() -> QuerySet[FineTuneJob]:
    return FineTuneJob.objects.select_related("base_config", "instruction_set", "result_config")


# --- Starting and cancelling --------------------------------------------------------------------------------------

def finetune_defaults() -> dict[str, Any]:
    """The paper's settings (FineTuneJob's field defaults), as the form and the command offer them."""
    defaults = {name: FineTuneJob._meta.get_field(name).get_default() for name in FINETUNE_PARAMETERS}
    defaults["target_modules"] = list(DEFAULT_TARGET_MODULES)
    return defaults


def target_modules_clean(raw: object) -> list[str]:
    """A list of module names (a comma-separated string too); empty: q/k/v/o."""
    if isinstance(raw, str):
        raw = [name for name in re.split(r"[\s,;]+", raw) if name]
    if not isinstance(raw, list | tuple) or not all(isinstance(name, str) for name in raw):
        raise ValidationError({"target_modules": _("A list of module names is required.")})
    bad = [name for name in raw if not MODULE_NAME.match(name)]
    if bad:
        raise ValidationError({"target_modules": _("Not module names: %(names)s.")
                               % {"names": ", ".join(name[:40] for name in bad[:5])}})
    if len(raw) > MAX_TARGET_MODULES:
        raise ValidationError({"target_modules": _("At most %(n)d target modules.") % {"n": MAX_TARGET_MODULES}})
    return list(dict.fromkeys(raw)) or list(DEFAULT_TARGET_MODULES)


def finetune_prompt_format(base_config: ModelConfig, instruction_set: InstructionSet) -> str:
    """The prompt format a model fine-tuned from base_config on instruction_set is trained and registered with, so
    that generation renders its prompts as training did and picks templates of the set's style (forms.
    model_and_template_check gives a completion-format model the completion templates, any other the instructions):
    completion for a set of completion templates; for a set of instructions, the base's own instruct format, or
    Alpaca (the MedSyn wrapper) when the base is a base model that has none."""
    if instruction_set_prompt_style(instruction_set) == PROMPT_STYLE_COMPLETION:
        return ModelConfig.PromptFormat.COMPLETION
    if base_config.prompt_format == ModelConfig.PromptFormat.COMPLETION:
        return ModelConfig.PromptFormat.ALPACA
    return base_config.prompt_format


def base_config_check(base_config: ModelConfig) -> None:
    """A base model must be a local transformers model without an adapter, whose files are here."""
    if base_config.backend != ModelConfig.Backend.LOCAL:
        raise ValidationError({"base_config": _("Only a local model can be fine-tuned; %(name)s is served by an "
                                                "API.") % {"name": base_config.name}})
    if base_config.adapter_path:
        raise ValidationError({"base_config": _("%(name)s already has an adapter: fine-tune its base model "
                                                "instead.") % {"name": base_config.name}})
    if not model_location(base_config.model_path).is_dir():
        raise ValidationError({"base_config": _("The model directory of %(name)s is missing on this server.")
                               % {"name": base_config.name}})


def instruction_set_check(instruction_set: InstructionSet) -> None:
    if instruction_set.status != InstructionSet.Status.READY:
        raise ValidationError({"instruction_set": _("The instruction set %(set)s is not ready (%(status)s).")
                               % {"set": instruction_set, "status": instruction_set.get_status_display()}})
    if not instruction_set.n_train:
        raise ValidationError({"instruction_set": _("The instruction set %(set)s has no training record.")
                               % {"set": instruction_set}})
    if not instruction_set_path(instruction_set).is_file():
        raise ValidationError({"instruction_set": _("The file of the instruction set %(set)s is missing.")
                               % {"set": instruction_set}})


def model_name_check(name: str) -> None:
    """The new model's name must be free, among models and the unfinished jobs that will register one."""
    taken = (ModelConfig.objects.filter(name=name).exists()
             or FineTuneJob.objects.filter(name=name, status__in=[JobStatus.QUEUED, JobStatus.RUNNING]).exists())
    if taken:
        raise ValidationError({"name": _("A model (or a running fine-tuning job) is already named %(name)s.")
                               % {"name": name}})


@transaction.atomic
def do_start_finetune(*, base_config: ModelConfig, instruction_set: InstructionSet, name: str,
                      parameters: Mapping[str, Any], actor: AbstractBaseUser | None,
                      enqueue: bool = True) -> FineTuneJob:
    """Check the request (ValidationError by field), store the job and its audit record, and send it to the gpu
    queue after the commit (enqueue=False: the caller runs it, as `manage.py finetune` does). parameters: any of
    FINETUNE_PARAMETERS; the others keep the paper's defaults."""
    unknown = sorted(set(parameters) - set(FINETUNE_PARAMETERS))
    if unknown:
        raise ValidationError(_("Unknown fine-tuning parameter(s): %(names)s.") % {"names": ", ".join(unknown)})
    name = (name or "").strip()
    values = {**finetune_defaults(), **{key: value for key, value in parameters.items() if value is not None
                                        or key == "max_steps"}}
    values["target_modules"] = target_modules_clean(values["target_modules"])
    job = FineTuneJob(base_config=base_config, instruction_set=instruction_set, name=name,
                      created_by=actor if actor is not None and actor.is_authenticated else None, **values)
    job.full_clean(exclude=["output_dir"])
    if job.micro_batch_size > job.batch_size:
        raise ValidationError({"micro_batch_size": _("The micro-batch cannot be larger than the batch.")})
    base_config_check(base_config)
    instruction_set_check(instruction_set)
    model_name_check(name)
    job.progress_total = steps_plan(instruction_set.n_train, job_settings(job))[1]  # an estimate until it runs
    job.save()
    job.output_dir = str(Path(settings.FINETUNE_DIR) / str(job.pk))
    job.save(update_fields=["output_dir"])
    audit_write(actor=actor, action=AuditEvent.START_FINETUNE, obj=job, to_state=job.status,
                extra={"name": name, "base_config": base_config.name, "instruction_set": str(instruction_set),
                       "prompt_format": finetune_prompt_format(base_config, instruction_set),
                       "parameters": {key: getattr(job, key) for key in FINETUNE_PARAMETERS}})
    if enqueue:
        job_send_on_commit(job)
    return job


@transaction.atomic
def do_cancel_finetune(*, job: FineTuneJob, actor: AbstractBaseUser | None) -> FineTuneJob:
    """Stop a queued or running job: the worker stops before its next step; checkpoints stay on disk, no model is
    registered. StateConflict when the job has already finished."""
    return job_cancel(job, actor=actor, event=AuditEvent.CANCEL_FINETUNE, fields={"cancel_requested": True},
                      already_finished=_("Fine-tuning job %(id)s has already finished (%(status)s): nothing to "
                                         "cancel."),
                      extra=lambda job: {"step": job.progress_done, "checkpoint_step": job.checkpoint_step})


# --- Running ------------------------------------------------------------------------------------------------------

def job_settings(job: FineTuneJob) -> TrainingSettings:
    return TrainingSettings(
        lora_r=job.lora_r, lora_alpha=job.lora_alpha, lora_dropout=job.lora_dropout,
        target_modules=tuple(job.target_modules or DEFAULT_TARGET_MODULES), learning_rate=job.learning_rate,
        epochs=job.epochs, batch_size=job.batch_size, micro_batch_size=job.micro_batch_size,
        max_length=job.max_length, max_steps=job.max_steps, warmup_steps=job.warmup_steps,
        eval_every=job.eval_every, checkpoint_every=job.checkpoint_every, seed=job.seed)


def job_output_dir(job: FineTuneJob) -> Path:
    return Path(job.output_dir) if job.output_dir else Path(settings.FINETUNE_DIR) / str(job.pk)


def _job_update(job_id: int, **fields: Any) -> None:
    fields.setdefault("updated_at", timezone.now())
    FineTuneJob.objects.filter(pk=job_id).update(**fields)


def _fail(job: FineTuneJob, error: BaseException) -> None:
    job.mark_finished(JobStatus.FAILED, error=f"{type(error).__name__}: {error}", step="")


class JobRecorder:
    """The engine's callbacks for one job: run facts, the metrics curve, progress and the checkpoint step on the
    job row; cancel read back from it between steps."""

    def __init__(self, job: FineTuneJob, *, progress: Progress | None = None,
                 activity: ProgressRecorder | None = None) -> None:
        self.job_id = job.pk
        self.metrics: list[dict] = list(job.metrics)
        self.progress = progress
        self.activity = activity  # the job's phase and its steps over time (rate and ETA on the page)
        self._last_beat = time.monotonic()

    def on_start(self, run: RunStart) -> None:
        self.metrics = [entry for entry in self.metrics if entry["step"] <= run.resumed_from]
        info = FineTuneJob.objects.values_list("run_info", flat=True).get(pk=self.job_id) or {}
        resumes = info.get("resumes", [])
        if run.resumed_from:
            resumes = [*resumes, run.resumed_from]
            logger.info("fine-tuning resumed from a checkpoint", extra={"job_id": self.job_id,
                                                                        "step": run.resumed_from})
        _job_update(self.job_id, run_info={**run.as_dict(), "resumes": resumes}, device=run.device,
                    dtype=run.dtype, metrics=self.metrics, progress_total=run.total_steps,
                    progress_done=run.resumed_from, checkpoint_step=run.resumed_from, step=gettext_noop("Training"))
        if self.activity:
            self.activity.phase_set(JobPhase.RUNNING)
            self.activity.in_flight(run.resumed_from, run.total_steps)
        if self.progress:
            self.progress(run.resumed_from, run.total_steps)

    def on_step(self, report: StepReport) -> None:
        entry = {key: value for key, value in report.as_dict().items() if key not in ("total_steps",
                                                                                   "checkpoint_step")}
        entry["at"] = timezone.now().isoformat()
        self.metrics.append(entry)
        fields: dict[str, Any] = {"metrics": self.metrics, "progress_done": report.step}
        if report.checkpoint_step is not None:
            fields["checkpoint_step"] = report.checkpoint_step
        _job_update(self.job_id, **fields)
        self._last_beat = time.monotonic()
        if self.activity:
            self.activity.in_flight(report.step, report.total_steps)
        if self.progress:
            self.progress(report.step, report.total_steps)

    def on_micro_batch(self) -> None:
        if time.monotonic() - self._last_beat >= HEARTBEAT_SECONDS:
            self._last_beat = time.monotonic()
            _job_update(self.job_id)

    def should_stop(self) -> bool:
        status, cancel = FineTuneJob.objects.values_list("status", "cancel_requested").get(pk=self.job_id)
        return cancel or status != JobStatus.RUNNING


def adapter_publish(job_id: int, adapter_dir: Path) -> str:
    """Publish a finished run's adapter folder to the adapters storage (core.storage: the model cache's adapters
    folder, a shared folder or a bucket) under a name made of the job and the SHA-256 of its manifest, recorded in
    the job's run_info; returns the adapter_path of the model it makes (local_backend.adapter_reference), which a
    worker on any host loads, fetching and checking it first when it does not have it."""
    _job_update(job_id, step=gettext_noop("Publishing the adapter"))
    key = folder_publish_addressed(adapters_storage(), adapter_dir, f"ft{job_id}")
    info = FineTuneJob.objects.values_list("run_info", flat=True).get(pk=job_id) or {}
    _job_update(job_id, run_info={**info, "adapter": key})
    logger.info("adapter published", extra={"job_id": job_id, "adapter": key,
                                            "where": storage_where(adapters_storage(), key)})
    return adapter_reference(key)


@contextmanager
def job_adapter_folder(job: FineTuneJob) -> Iterator[Path | None]:
    """A local folder holding a finished job's adapter, None when it has none: the published copy (a folder storage's
    own folder, else fetched from the bucket into a temporary folder, checked), or for a job finished before
    adapters were published, its run's folder when this host has it."""
    key = (job.run_info or {}).get("adapter") if job.status == JobStatus.DONE else None
    if not key:
        legacy = job_output_dir(job) / ADAPTER
        yield legacy if job.status == JobStatus.DONE and legacy.is_dir() else None
        return
    storage = adapters_storage()
    if is_folder(storage):
        yield Path(storage.path(key))
        return
    with folder_workspace(storage) as work:
        folder_fetch_addressed(storage, key, work / key)
        yield work / key


def result_config_create(job: FineTuneJob, adapter_path: str, *, prompt_format: str) -> ModelConfig:
    """The new model: a copy of the base configuration (files, precision, sampling and whatever else it records)
    with the adapter, the prompt format it was trained with and the job's name (the name with the job id when taken
    meanwhile)."""
    base = job.base_config
    config = ModelConfig()
    for model_field in ModelConfig._meta.concrete_fields:
        if not model_field.primary_key and model_field.name not in ("name", "created_at", "updated_at"):
            setattr(config, model_field.attname, getattr(base, model_field.attname))
    name = job.name
    if ModelConfig.objects.filter(name=name).exists():
        name = f"{job.name[:80]} (fine-tune {job.pk})"
    config.name, config.adapter_path, config.prompt_format = name, adapter_path, prompt_format
    config.save()
    return config


def finetune_job_run(job_id: int, *, progress: Progress | None = None) -> None:
    """Run (or continue, from its latest checkpoint) a queued or running job; a finished or cancelled one is left
    as it is. progress: (step, total steps) for a command's progress bar."""
    job = FineTuneJob.objects.select_related("base_config", "instruction_set").filter(pk=job_id).first()
    if job is None or not job.mark_running():
        return
    _job_update(job_id, step=gettext_noop("Loading the model and the records"))
    prompt_format = finetune_prompt_format(job.base_config, job.instruction_set)
    try:
        with ProgressRecorder(job, min_interval=0) as activity:
            activity.phase_set(JobPhase.LOADING_MODEL)  # until the engine starts (JobRecorder.on_start)
            recorder = JobRecorder(job, progress=progress, activity=activity)
            train, validation = instruction_set_records(job.instruction_set)
            result = lora_train(base=job.base_config, train=train, validation=validation,
                                settings=job_settings(job), output_dir=job_output_dir(job),
                                on_start=recorder.on_start, on_step=recorder.on_step,
                                on_micro_batch=recorder.on_micro_batch, should_stop=recorder.should_stop,
                                prompt_format=prompt_format)
            if result.finished:
                adapter_path = adapter_publish(job_id, result.adapter_dir or job_output_dir(job) / ADAPTER)
    # The data, the files, the settings or the storage (core.storage.StorageUnavailable is an OSError): the adapter
    # of a run that failed to publish stays in its folder on this host.
    except (CheckpointMismatch, ValueError, OSError) as error:
        logger.warning("fine-tuning failed", extra={"job_id": job_id}, exc_info=True)
        _fail(job, error)
        return
    except Exception as error:  # the job page must not show "running" for ever; the task records the traceback
        _fail(job, error)
        raise
    if not result.finished:
        job.mark_finished(JobStatus.CANCELLED, step="")  # stays as do_cancel_finetune left it when that stopped it
        return
    with transaction.atomic():
        config = result_config_create(job, adapter_path, prompt_format=prompt_format)
        if not job.mark_finished(JobStatus.DONE, result_config=config, step="", progress_done=result.step):
            transaction.set_rollback(True)  # cancelled at the very end, or finished by another delivery
