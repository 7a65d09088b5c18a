"""Generation jobs: plan preview, creation, cancel, resume, and the execution the Celery task runs.

A job's items carry their fully built prompts, so the same seed gives the same plan and the same prompts,
and a redelivered task only has to finish the items still pending. Each item's outcome (its note, its
status and the job's counters) is written in one transaction under a row lock on the item: an item that is
already done is never redone, which makes a worker killed mid-job and redelivered end with exactly the
planned notes. A backend hands each result over as soon as it is final (a local batch's rows end one by one), so
notes are written as they come, and the running batch's progress (its share of the tokens) is written about once a
second, when a cancel is also read back (JobWatch).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, get_args

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import F, Max
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from graph.sampling import SamplingData, sampling_data_load
from graph.store import get_graph_store
from medsyn_site.core.audit import audit_write
from medsyn_site.core.chunks import chunk_size_default, chunks_dispatch
from medsyn_site.core.errors import StateConflict
from medsyn_site.core.icd10 import icd_category, icd_category_clean, icd_code_clean
from medsyn_site.core.jobs import job_cancel, job_send_on_commit
from medsyn_site.core.models import AuditEvent, BackgroundJob, JobChunk, JobPhase, JobStatus
from medsyn_site.core.progress import ProgressRecorder
from medsyn_site.core.workers import Requirements, worker_capabilities_all, workers_able

from .backends.base import (
    GenerationBackend,
    GenerationCancelled,
    GenerationRequest,
    GenerationResult,
    GenerationWatch,
    PlanInputs,
    backend_for,
)
from .bertscore import BertScorer, bert_scorer_configured
from .checks import CheckThresholds, note_checks_run
from .memorisation import MemorisationIndex, memorisation_index_cached
from .models import GenerationItem, GenerationJob, Language, ModelConfig, Note, PromptTemplate
from .planning import (
    DEFAULT_MIN_WORDS,
    MAX_TASKS,
    MAX_TASKS_PER_CATEGORY,
    Allocation,
    Plan,
    PlanError,
    PlanTask,
    SymptomMode,
    examples_group,
    plan_allocate,
    plan_build,
)
from .prompts import PromptTooLongError, prompt_build_from_template, template_fields
from .selectors import prompt_template_current
from .services import note_content_hash

logger = logging.getLogger("medsyn.generation")

SOURCE_DATASET = "MedSyn Studio"
SAMPLING_OVERRIDES = ("temperature", "top_p", "max_new_tokens")
# The plan inputs a prompt can contain, by the template placeholders that put them there.
PROMPT_INPUT_FIELDS = {"symptoms": frozenset({"symptoms"}), "example": frozenset({"example"}),
                       "code": frozenset({"code", "disease"})}


# The bounds of a plan request (plan_request_from): what a job may ask of the model. The planner's own bounds
# (planning.MAX_TASKS, MAX_TASKS_PER_CATEGORY) bound the budget and the counts given by hand.
MAX_NEW_TOKENS = 4096
MAX_MIN_WORDS = 1000
MAX_CHECK_THRESHOLD = 1_000_000
SEED_RANGE = (-(2**63), 2**63 - 1)  # the job's seed column (bigint)
CHECK_NAMES = frozenset(f.name for f in dataclasses.fields(CheckThresholds)) - {"allowed_latin_words"}


@dataclass(frozen=True)
class PlanRequest:
    """What a user asks for; stored as the job's parameters. Build it from user input with plan_request_from."""

    budget: int
    categories: list[str] | None = None  # None: every category with example notes
    allocation: str = "weighted"
    explicit_counts: dict[str, int] = field(default_factory=dict)
    overrides: dict[str, int] = field(default_factory=dict)
    symptom_mode: str = "uniform"
    variant: str = "symptoms_example"
    language: str = "ru"
    seed: int = 17
    min_words: int = DEFAULT_MIN_WORDS
    temperature: float | None = None
    top_p: float | None = None
    max_new_tokens: int | None = None
    checks: dict[str, float] = field(default_factory=dict)  # CheckThresholds overrides, by field name

    def as_parameters(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _whole(low: int, high: int) -> Callable[[object], int]:
    def parse(raw: object) -> int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise ValueError(_("A whole number is required."))
        if not low <= raw <= high:
            raise ValueError(_("Must be from %(low)s to %(high)s.") % {"low": low, "high": high})
        return raw

    return parse


def _number(low: float, high: float) -> Callable[[object], float]:
    def parse(raw: object) -> float:
        if isinstance(raw, bool) or not isinstance(raw, int | float) or not math.isfinite(raw):
            raise ValueError(_("A number is required."))
        if not low <= raw <= high:
            raise ValueError(_("Must be from %(low)s to %(high)s.") % {"low": low, "high": high})
        return float(raw)

    return parse


def _choice(options: Iterable[str]) -> Callable[[object], str]:
    options = tuple(options)

    def parse(raw: object) -> str:
        if raw not in options:
            raise ValueError(_("Must be one of: %(options)s.") % {"options": ", ".join(options)})
        return str(raw)

    return parse


def _categories(raw: object) -> list[str] | None:
    """ICD-10 codes or categories -> their sorted categories (None: every category with examples)."""
    if not isinstance(raw, list | tuple):
        raise ValueError(_("A list of ICD-10 codes is required."))
    found, bad = set(), []
    for item in raw:
        try:
            found.add(icd_category(icd_code_clean(item)))
        except ValueError:
            bad.append(str(item))
    if bad:
        raise ValueError(_("Not ICD-10 codes: %(codes)s.") % {"codes": ", ".join(bad)})
    return sorted(found) or None


def _counts(raw: object) -> dict[str, int]:
    """{category: tasks}: ICD-10 categories (the planner then refuses one that is not among the plan's categories in
    the graph), each count at most MAX_TASKS_PER_CATEGORY, all of them together at most MAX_TASKS."""
    if not isinstance(raw, Mapping):
        raise ValueError(_("A mapping of ICD-10 category to count is required."))
    counts = {}
    for key, value in raw.items():
        try:
            category = icd_category_clean(key)
        except ValueError:
            raise ValueError(_("Not an ICD-10 category (a letter and two digits): %(key)r.")
                             % {"key": str(key)[:20]}) from None
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TASKS_PER_CATEGORY:
            raise ValueError(_("%(category)s: a count is a whole number from 0 to %(max)d.")
                             % {"category": category, "max": MAX_TASKS_PER_CATEGORY})
        counts[category] = value
    if sum(counts.values()) > MAX_TASKS:
        raise ValueError(_("The counts add up to more than %(max)d tasks.") % {"max": MAX_TASKS})
    return counts


def _checks(raw: object) -> dict[str, float]:
    if not isinstance(raw, Mapping):
        raise ValueError(_("A mapping of check threshold name to number is required."))
    unknown = sorted(set(raw) - CHECK_NAMES)
    if unknown:
        raise ValueError(_("Unknown check threshold(s): %(names)s.") % {"names": ", ".join(map(str, unknown))})
    return {name: _number(0, MAX_CHECK_THRESHOLD)(value) for name, value in raw.items()}


PLAN_RULES: dict[str, Callable[[object], Any]] = {
    "categories": _categories,
    "budget": _whole(1, MAX_TASKS),
    "allocation": _choice(get_args(Allocation)),
    "explicit_counts": _counts,
    "overrides": _counts,
    "symptom_mode": _choice(get_args(SymptomMode)),
    "variant": _choice(PromptTemplate.Variant.values),
    "language": _choice(Language.values),
    "seed": _whole(*SEED_RANGE),
    "min_words": _whole(1, MAX_MIN_WORDS),
    "temperature": _number(0, 2),
    "top_p": _number(0, 1),
    "max_new_tokens": _whole(1, MAX_NEW_TOKENS),
    "checks": _checks,
}


def plan_request_from(data: Mapping[str, Any]) -> PlanRequest:
    """The one validation of a plan request: the job form and the API both build theirs here, so they accept and
    refuse the same requests. data holds typed values (the form's or serializer's fields convert the text);
    an absent or None value takes PlanRequest's default (for the sampling overrides: the model configuration's).
    Raises ValidationError with the problems by field name."""
    values, errors = {}, {}
    for spec in dataclasses.fields(PlanRequest):
        raw = data.get(spec.name)
        if raw is None:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                errors[spec.name] = [_("This field is required.")]
            continue
        try:
            values[spec.name] = PLAN_RULES[spec.name](raw)
        except ValueError as error:
            errors[spec.name] = [str(error)]
    if errors:
        raise ValidationError(errors)
    return PlanRequest(**values)


def examples_load(categories: list[str] | None, *, min_words: int) -> dict[str, list]:
    """Real notes usable as examples, grouped by category (all categories when none are chosen)."""
    notes = Note.objects.filter(origin=Note.Origin.REAL)
    if categories:
        notes = notes.filter(icd_category__in=categories)
    return examples_group(notes.values_list("id", "icd_category", "text").iterator(), min_words=min_words)


def plan_compute(request: PlanRequest, *, data: SamplingData | None = None, tasks: bool = True) -> Plan:
    """The plan for a request over the current graph and the real-note corpus (PlanError when impossible).
    tasks=False: its rows only (planning.plan_allocate), in time that does not grow with the budget."""
    data = data or sampling_data_load(get_graph_store())
    inputs: dict[str, Any] = {
        "categories": request.categories, "budget": request.budget, "seed": request.seed,
        "examples": examples_load(request.categories, min_words=request.min_words),
        "allocation": request.allocation, "explicit_counts": request.explicit_counts,
        "overrides": request.overrides, "symptom_mode": request.symptom_mode,
    }
    if not tasks:
        return plan_allocate(data, **inputs)
    return plan_build(data, **inputs, language=request.language)


def job_plan_preview(request: PlanRequest) -> Plan:
    """The rows a job would run (count, weight, N_exmp, N_symp), without sampling its tasks: a request answers
    at once whatever the budget (bench/bench_plan_request.py); the job's worker samples them (job_items_build)."""
    return plan_compute(request, tasks=False)


def item_prompt_rng(seed: int, index: int) -> random.Random:
    return random.Random(f"{seed}:prompt:{index}")


def queue_for(config: ModelConfig) -> str:
    """The worker queue of a model's jobs: local models on "gpu" ("gpu.cuda" for one that needs CUDA: only workers
    that have it consume that queue), API models on "api", template filling (no model) on "default"."""
    if config.backend == ModelConfig.Backend.LOCAL and config.device == ModelConfig.Device.CUDA:
        return "gpu.cuda"
    return {ModelConfig.Backend.LOCAL: "gpu", ModelConfig.Backend.TEMPLATE: "default"}.get(config.backend, "api")


def job_enqueue(job: GenerationJob) -> None:
    """Send the job to its worker queue once the surrounding transaction has committed (core.jobs: a broker that
    is down rolls the action back with a 503)."""
    job_send_on_commit(job)


@transaction.atomic
def do_create_job(
    *,
    request: PlanRequest,
    model_config: ModelConfig,
    actor: AbstractBaseUser | None,
    prompt_template: PromptTemplate | None = None,
    budget_cap: Decimal | None = None,
    enqueue: bool = True,
    data: SamplingData | None = None,
) -> GenerationJob:
    """Allocate the plan (its rows: PlanError, a ValidationError, when it cannot be made or has no task), store the
    job and its audit record in one transaction, then enqueue it. The job's worker samples the tasks and builds
    every item's prompt (job_items_build): at the largest plans that takes tens of seconds, too long for a request
    (bench/bench_plan_request.py)."""
    plan = plan_compute(request, data=data, tasks=False)
    if not plan.total:
        raise PlanError(_("The plan has no tasks."))
    try:
        template = prompt_template or prompt_template_current(variant=request.variant, language=request.language)
    except PromptTemplate.DoesNotExist:
        raise ValidationError(_("No prompt template for the variant %(variant)s in the language %(language)s.")
                              % {"variant": request.variant, "language": request.language}) from None
    job = GenerationJob.objects.create(
        parameters=request.as_parameters(), model_config=model_config, prompt_template=template, seed=request.seed,
        graph_version=plan.graph_version or "", planned=plan.total, progress_total=plan.total, budget_cap=budget_cap,
        created_by=actor if actor is not None and actor.is_authenticated else None,
    )
    audit_write(actor=actor, action=AuditEvent.CREATE_GENERATION_JOB, obj=job, to_state=job.status,
                extra={"planned": plan.total, "model_config": model_config.name,
                       "prompt_template": str(template), "graph_version": job.graph_version,
                       "budget_cap": None if budget_cap is None else str(budget_cap)})
    if enqueue:
        job_enqueue(job)
    return job


def _item_for(job: GenerationJob, task: PlanTask, *, seed: int, disease_name: str) -> GenerationItem:
    """A task as a pending item with its prompt, or skipped when the prompt would be too long for the model."""
    item = GenerationItem(job=job, index=task.index, category=task.category, donor_code=task.donor_code or "",
                          disease_name=disease_name, symptoms=list(task.symptoms),
                          example_note_id=task.example_note_id, example_text=task.example_text)
    try:
        built = prompt_build_from_template(
            job.prompt_template, rng=item_prompt_rng(seed, task.index), symptoms=list(task.symptoms),
            example=task.example_text, disease_name=disease_name, code=task.donor_code or task.category,
        )
        item.prompt_system, item.prompt_user = built.system, built.user
    except PromptTooLongError as error:
        item.status, item.error = GenerationItem.Status.SKIPPED, error.skip_reason
    return item


ITEMS_WRITE_BATCH = 1000


def job_items_build(job: GenerationJob) -> None:
    """Sample the job's plan from its stored request and write every item with its prompt, once, in one transaction:
    a worker killed meanwhile leaves no item (the next delivery builds them all), and a delivery building at the same
    time fails on the items' (job, index) uniqueness and leaves them to the first. The job's counters and graph
    version become the plan's as built (the graph or the notes may have changed since the request). PlanError when
    the plan cannot be made any more."""
    if job.items.exists():
        return
    request = PlanRequest(**job.parameters)
    GenerationJob.objects.filter(pk=job.pk).update(step=gettext_noop("Sampling the plan and building the prompts"),
                                                   updated_at=timezone.now())
    plan = plan_compute(request)
    if not plan.tasks:
        raise PlanError(_("The plan has no tasks."))
    names = {row.category: row.name for row in plan.rows}
    skipped, batch = 0, []
    try:
        with transaction.atomic():
            for task in plan.tasks:
                item = _item_for(job, task, seed=request.seed, disease_name=names.get(task.category, task.category))
                skipped += item.status == GenerationItem.Status.SKIPPED
                batch.append(item)
                if len(batch) == ITEMS_WRITE_BATCH:
                    GenerationItem.objects.bulk_create(batch)
                    batch = []
            GenerationItem.objects.bulk_create(batch)
            GenerationJob.objects.filter(pk=job.pk).update(
                planned=plan.total, progress_total=plan.total, skipped=skipped, progress_done=skipped,
                graph_version=plan.graph_version or "", step="", updated_at=timezone.now())
    except IntegrityError:
        logger.info("items already built by another delivery", extra={"job_id": job.pk})
    job.refresh_from_db()


@transaction.atomic
def do_cancel_job(*, job: GenerationJob, actor: AbstractBaseUser | None) -> GenerationJob:
    """Stop a queued or running job: its worker stops at its next check, between batches or inside the running one
    (JobWatch, within about PROGRESS_INTERVAL_SECONDS); items already done keep their notes, the others stay
    pending. StateConflict when the job has already finished."""
    return job_cancel(job, actor=actor, event=AuditEvent.CANCEL_GENERATION_JOB,
                      already_finished=_("Job %(id)s has already finished (%(status)s): nothing to cancel."),
                      extra=lambda job: {"ok": job.ok, "failed": job.failed, "skipped": job.skipped})


@transaction.atomic
def do_resume_job(*, job: GenerationJob, actor: AbstractBaseUser | None) -> GenerationJob:
    """Run an unfinished job again (GenerationJob.resumable): a stopped one (failed, cancelled, or done with failed
    items) with items left, its pending items and, once more, the items that failed; or a stalled one. StateConflict
    when the job is still running (it made progress within STALLED_AFTER) or has no item left to run."""
    job = GenerationJob.objects.select_for_update().get(pk=job.pk)
    if not job.resumable:
        if job.finished:
            raise StateConflict(_("Job %(id)s is %(status)s with no item left to run: nothing to resume.")
                                % {"id": job.pk, "status": job.get_status_display().lower()})
        raise StateConflict(_("Job %(id)s is still %(status)s: only a stopped job with items left, or a stalled one, "
                              "can be resumed.") % {"id": job.pk, "status": job.get_status_display().lower()})
    previous = job.status
    retried = job.items.filter(status=GenerationItem.Status.FAILED).update(status=GenerationItem.Status.PENDING,
                                                                          error="")
    job.failed = max(0, job.failed - retried)
    job.progress_done = max(0, job.progress_done - retried)
    job.status, job.finished_at, job.error = JobStatus.QUEUED, None, ""
    job.save(update_fields=["failed", "progress_done", "status", "finished_at", "error", "updated_at"])
    audit_write(actor=actor, action=AuditEvent.RESUME_GENERATION_JOB, obj=job, from_state=previous,
                to_state=job.status, extra={"retried": retried})
    job_enqueue(job)
    return job


def model_config_for_job(job: GenerationJob) -> ModelConfig:
    """The job's model configuration with the sampling parameters the job overrides (not saved)."""
    config = ModelConfig.objects.get(pk=job.model_config_id)
    for name in SAMPLING_OVERRIDES:
        value = job.parameters.get(name)
        if value is not None:
            setattr(config, name, value)
    return config


def check_thresholds_for(job: GenerationJob) -> CheckThresholds:
    return CheckThresholds.from_dict(job.parameters.get("checks", {}))


def prompt_inputs(template: PromptTemplate) -> list[str]:
    """The plan inputs a template's prompts contain: "symptoms", "example", "code" (the disease name or code)."""
    fields = template_fields(template.system_text) | template_fields(template.user_text)
    return [name for name, placeholders in PROMPT_INPUT_FIELDS.items() if placeholders & fields]


def item_plan_inputs(job: GenerationJob, item: GenerationItem, inputs: list[str]) -> PlanInputs:
    """The item's inputs its prompt contained (inputs: prompt_inputs of the job's template), for a backend that writes
    without a prompt (template filling), seeded by the job's seed and the item's index."""
    with_code = "code" in inputs
    return PlanInputs(language=job.parameters.get("language", "ru"), seed=f"{job.seed}:{item.index}",
                      symptoms=tuple(item.symptoms) if "symptoms" in inputs else (),
                      code=(item.donor_code or item.category) if with_code else "",
                      disease=item.disease_name if with_code else "")


def note_provenance(job: GenerationJob, config: ModelConfig, item: GenerationItem, result: GenerationResult,
                    thresholds: CheckThresholds) -> dict[str, Any]:
    """Everything a note came from. Symptoms and example are recorded only when the prompt contained them
    (prompt_inputs), so neither the checks nor an export ever treat an unused example as the note's source."""
    template = job.prompt_template
    parameters = job.parameters
    inputs = prompt_inputs(template)
    with_example = "example" in inputs
    return {
        "job_id": job.pk,
        "generation_model": config.name,
        "prompt_variant": template.variant,
        "model_config": {"id": config.pk, "name": config.name, "backend": config.backend,
                         "path": config.model_path, "gguf_file": config.gguf_file,
                         "endpoint": config.base_url, "api_model": config.api_model,
                         "adapter": config.adapter_path, "revision": config.revision,
                         "temperature": config.temperature, "top_p": config.top_p,
                         "max_new_tokens": config.max_new_tokens, "licence": config.licence,
                         "licence_url": config.licence_url},
        "prompt_template": {"id": template.pk, "name": template.name, "version": template.version},
        "prompt": {"system": item.prompt_system, "user": item.prompt_user},
        "prompt_inputs": inputs,
        "symptoms": item.symptoms if "symptoms" in inputs else [],
        "donor_code": item.donor_code,
        "example_note_id": item.example_note_id if with_example else None,
        "example_text": item.example_text if with_example else "",
        "graph_version": job.graph_version,
        "seed": job.seed,
        "item_index": item.index,
        "sampling": {key: parameters.get(key) for key in ("allocation", "symptom_mode", "min_words", "budget",
                                                           "categories", "explicit_counts", "overrides")},
        "tokens": {"prompt": result.prompt_tokens, "completion": result.completion_tokens},
        "latency_s": result.latency_s,
        "attempts": result.attempts,
        "check_thresholds": thresholds.as_dict(),
    }


def result_clean(result: GenerationResult) -> GenerationResult:
    """PostgreSQL text cannot hold NUL characters (a small model may emit them): drop them; nothing left is an error."""
    if not result.ok or "\x00" not in result.text:
        return result
    text = result.text.replace("\x00", "").strip()
    return dataclasses.replace(result, text=text, error=None if text else "empty completion")


def item_record(job: GenerationJob, config: ModelConfig, item_id: int, result: GenerationResult,
                thresholds: CheckThresholds, real_notes: MemorisationIndex | None = None,
                scorer: BertScorer | None = None) -> str | None:
    """Store one result: note + item status + job counters in one transaction. Returns the new item status,
    or None when the item was no longer pending (done by an earlier delivery of the task)."""
    result = result_clean(result)
    with transaction.atomic():
        item = GenerationItem.objects.select_for_update().get(pk=item_id)
        if item.status != GenerationItem.Status.PENDING:
            return None
        counters: dict[str, Any] = {"progress_done": F("progress_done") + 1,
                                    "prompt_tokens": F("prompt_tokens") + result.prompt_tokens,
                                    "completion_tokens": F("completion_tokens") + result.completion_tokens}
        if result.cost:
            counters["cost"] = F("cost") + Decimal(str(result.cost))
        item.prompt_tokens, item.completion_tokens = result.prompt_tokens, result.completion_tokens
        item.latency_s, item.attempts = result.latency_s, result.attempts
        if not result.ok:
            item.status, item.error = GenerationItem.Status.FAILED, result.error or "unknown error"
            counters["failed"] = F("failed") + 1
        else:
            language = job.parameters.get("language", "ru")
            provenance = note_provenance(job, config, item, result, thresholds)
            report = note_checks_run(text=result.text, language=language, provenance=provenance,
                                     real_notes=real_notes, scorer=scorer)
            code = item.donor_code or item.category
            digest = note_content_hash(origin=Note.Origin.SYNTHETIC, icd_code=code, text=result.text)
            try:
                with transaction.atomic():
                    note = Note.objects.create(
                        origin=Note.Origin.SYNTHETIC, text=result.text, icd_code=code, icd_category=item.category,
                        language=language, source_dataset=SOURCE_DATASET, content_hash=digest,
                        metadata={**provenance, "checks": report},
                    )
            except IntegrityError:
                item.status = GenerationItem.Status.SKIPPED
                item.error = "duplicate: the same text already exists as a note (content hash)"
                counters["skipped"] = F("skipped") + 1
            else:
                item.status, item.note, item.error = GenerationItem.Status.DONE, note, ""
                counters["ok"] = F("ok") + 1
                if not report["passed"]:
                    counters["failed_checks"] = F("failed_checks") + 1
        item.save()
        GenerationJob.objects.filter(pk=job.pk).update(**counters, updated_at=timezone.now())
        return item.status


def _budget_exhausted(job: GenerationJob, batch_len: int) -> bool:
    """Whether running the next batch could push the cost past the cap (estimated from the cost per item so far)."""
    if job.budget_cap is None:
        return False
    if job.cost >= job.budget_cap:
        return True
    done = job.ok + job.failed
    per_item = (job.cost / done) if done else Decimal(0)  # unknown before the first batch: it always runs
    return job.cost + per_item * batch_len > job.budget_cap


def _finish(job_id: int, status: str, error: str = "") -> None:
    """End a running job; a job cancelled meanwhile stays cancelled."""
    now = timezone.now()
    GenerationJob.objects.filter(pk=job_id, status=JobStatus.RUNNING).update(status=status, error=error,
                                                                             finished_at=now, updated_at=now)


PROGRESS_INTERVAL_SECONDS = 1.0  # how often a running batch writes its progress and reads a cancel back


class JobWatch(GenerationWatch):
    """A running job's watch over its generate() calls: at most once per PROGRESS_INTERVAL_SECONDS the progress of
    the running batch (fractions of the units under way included) goes to the job's activity, so the bar moves
    inside a batch, and the job's status is read back: a cancel stops the batch there (GenerationCancelled), its
    units without a result left to run again, nothing of them written. Subclasses record each result (result())."""

    def __init__(self, job: BackgroundJob, recorder: ProgressRecorder) -> None:
        self.job, self.recorder = job, recorder
        self.done_before = 0
        self._last_check = 0.0

    def batch_start(self, job: BackgroundJob) -> None:
        """A batch begins: job, just read, has progress_done units with an outcome."""
        self.job, self.done_before = job, job.progress_done
        self.recorder.in_flight(job.progress_done, job.progress_total)

    def progress(self, done: float) -> None:
        now = time.monotonic()
        if now - self._last_check < PROGRESS_INTERVAL_SECONDS:
            return
        self._last_check = now
        self.recorder.in_flight(self.done_before + done, self.job.progress_total)
        if not type(self.job).objects.filter(pk=self.job.pk, status=JobStatus.RUNNING).exists():
            raise GenerationCancelled


class ItemsWatch(JobWatch):
    """A generation job's watch: each result is recorded as soon as the backend has it (item_record: the note, the
    item's status and the job's counters in one transaction)."""

    def __init__(self, job: GenerationJob, recorder: ProgressRecorder, config: ModelConfig,
                 thresholds: CheckThresholds, real_notes: MemorisationIndex | None, scorer: BertScorer | None) -> None:
        super().__init__(job, recorder)
        self.config, self.thresholds, self.real_notes, self.scorer = config, thresholds, real_notes, scorer

    def result(self, result: GenerationResult) -> None:
        item_record(self.job, self.config, int(result.key), result, self.thresholds, self.real_notes, self.scorer)


def job_execute(job_id: int) -> None:
    """The job's own task: build its items the first time (job_items_build), then share them out in chunks
    (core.chunks): each chunk of pending items is a task on the job's queue, so every worker of that queue, on any
    host, takes part. Outside a worker (a management command, the demo) the chunks run here, one after another."""
    job = GenerationJob.objects.select_related("prompt_template").filter(pk=job_id).first()
    if job is None or not job.mark_running():
        return  # finished or cancelled before this delivery
    with ProgressRecorder(job, min_interval=0) as recorder:
        recorder.phase_set(JobPhase.RUNNING)  # this run's activity: a previous run's samples are dropped
    try:
        job_items_build(job)
    except ValidationError as error:  # the plan cannot be made any more: the graph or the notes changed
        _finish(job_id, JobStatus.FAILED, " ".join(error.messages))
        return
    except Exception as error:  # the graph is down, for example: the job page says so; resume builds it again
        _finish(job_id, JobStatus.FAILED, f"{type(error).__name__}: {error}")
        raise
    items = job.items.all()
    end = (items.aggregate(end=Max("index"))["end"] or 0) + 1
    pending = items.filter(status=GenerationItem.Status.PENDING).values_list("index", flat=True)
    chunks_dispatch(job, end=end, size=chunk_size_for(model_config_for_job(job)), pending=list(pending))


def chunk_size_for(config: ModelConfig) -> int:
    """Items per chunk: the configuration's chunk_size, else settings.JOB_CHUNK_SIZE, else one local batch
    (batch_size) for a local model, API_WINDOWS_PER_CHUNK windows of requests in flight (concurrency) for an API
    model: within a chunk the next requests are in flight while the results that came back are written, so a chunk
    of one window would leave the endpoint idle at each chunk's end (bench/bench_fleet.py)."""
    if config.chunk_size:
        return config.chunk_size
    by_backend = {ModelConfig.Backend.LOCAL: config.batch_size,
                  ModelConfig.Backend.OPENAI: config.concurrency * API_WINDOWS_PER_CHUNK}
    return chunk_size_default(by_backend.get(config.backend, TEMPLATE_CHUNK_SIZE))


TEMPLATE_CHUNK_SIZE = 50  # template filling has no model to wait for: chunks of this many notes
API_WINDOWS_PER_CHUNK = 4


def requirements_for(config: ModelConfig) -> Requirements | None:
    """What a worker needs to run a model: a local model on "cuda" needs CUDA, and min_memory_gb of memory."""
    if config.backend != ModelConfig.Backend.LOCAL:
        return None
    return Requirements(device="cuda" if config.device == ModelConfig.Device.CUDA else "",
                        memory_gb=config.min_memory_gb or 0.0)


def job_waiting_reason(job: GenerationJob, workers: list[dict] | None = None) -> str | None:
    """Why an unfinished job may not move: no live worker consumes its queue, or none of them can run its model (too
    little memory, no CUDA: core.workers); None when one can (or the job has finished)."""
    if job.finished:
        return None
    config = job.model_config
    queue, requirements = queue_for(config), requirements_for(config)
    workers = worker_capabilities_all() if workers is None else workers
    if not any(queue in worker.get("queues", ()) for worker in workers):
        return _("No worker of the queue %(queue)s is running: the job waits until one starts.") % {"queue": queue}
    if requirements is not None and not workers_able(requirements, queue, workers):
        return _("No running worker can run this model (it needs %(needs)s): the job waits until one that can "
                 "starts.") % {"needs": requirements.describe()}
    return None


def job_chunk_execute(job: GenerationJob, chunk: JobChunk) -> bool:
    """Run one chunk of a job (core.chunks): load the model (once per worker process: the backends keep it), then the
    chunk's pending items in batches; cancel and the budget cap are checked between batches, and a cancel inside a
    running batch too (JobWatch). True when the chunk has no pending item left."""
    job = GenerationJob.objects.select_related("prompt_template").get(pk=job.pk)
    config = model_config_for_job(job)
    with ProgressRecorder(job, min_interval=0, shared=True) as recorder:
        loading = config.backend == ModelConfig.Backend.LOCAL
        try:
            with recorder.phase(JobPhase.LOADING_MODEL) if loading else contextlib.nullcontext():
                backend = backend_for(config)
        except Exception as error:  # a missing model directory, for example: nothing can run
            logger.exception("backend unavailable", extra={"job_id": job.pk})
            _finish(job.pk, JobStatus.FAILED, f"{type(error).__name__}: {error}")
            return False
        try:
            return _batches_run(job, config, backend, recorder, chunk)
        except Exception as error:  # the job page must not show "running" forever; the task records the traceback
            _finish(job.pk, JobStatus.FAILED, f"{type(error).__name__}: {error}")
            raise


def job_chunks_finish(job: GenerationJob) -> None:
    """Every chunk is done (core.chunks, under the job's row lock): the job is done, or failed when no item could be
    generated."""
    job.refresh_from_db()
    if job.ok == 0 and job.failed > 0:
        _finish(job.pk, JobStatus.FAILED, "no item could be generated; see the item errors")
    else:
        _finish(job.pk, JobStatus.DONE)


def _batches_run(job: GenerationJob, config: ModelConfig, backend: GenerationBackend,
                 recorder: ProgressRecorder, chunk: JobChunk) -> bool:
    """The chunk's pending items in index order, config.batch_size at a time, until none is left (True), a cancel
    or the cap (False)."""
    job_id = job.pk
    inputs = prompt_inputs(job.prompt_template)
    # memorisation check against every real note (kept by the process while the real notes stay the same)
    watch = ItemsWatch(job, recorder, config, check_thresholds_for(job), memorisation_index_cached(),
                       bert_scorer_configured())
    while True:
        job.refresh_from_db()
        if job.status != JobStatus.RUNNING:
            return False  # cancelled
        pending = job.items.filter(status=GenerationItem.Status.PENDING)
        batch = list(pending.filter(index__gte=chunk.first, index__lt=chunk.end).order_by("index")[:config.batch_size])
        if not batch:
            return True
        if _budget_exhausted(job, len(batch)):
            with transaction.atomic():
                left = pending.update(status=GenerationItem.Status.SKIPPED, error="budget cap reached")
                GenerationJob.objects.filter(pk=job_id).update(skipped=F("skipped") + left,
                                                               progress_done=F("progress_done") + left)
            _finish(job_id, JobStatus.DONE, f"budget cap reached: {left} item(s) not run")
            return False
        requests = [GenerationRequest(key=str(item.pk), system=item.prompt_system, user=item.prompt_user,
                                      inputs=item_plan_inputs(job, item, inputs)) for item in batch]
        watch.batch_start(job)
        try:
            backend.generate(requests, watch=watch)  # watch.result records each item as it comes
        except GenerationCancelled:
            return False  # the items of the batch without a result stay pending
