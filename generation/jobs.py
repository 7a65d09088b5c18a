"""Generation jobs: plan preview, creation, cancel, resume, and the execution the Celery task runs.

A job's items carry their fully built prompts, so the same seed gives the same plan and the same prompts,
and a redelivered task only has to finish the items still pending. Each item's outcome (its note, its
status and the job's counters) is written in one transaction under a row lock on the item: an item that is
already done is never redone, which makes a worker killed mid-job and redelivered end with exactly the
planned notes.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from graph.sampling import SamplingData, sampling_data_load
from graph.store import get_graph_store

from .backends.base import GenerationBackend, GenerationRequest, GenerationResult, backend_for
from .bertscore import BertScorer, bert_scorer_configured
from .checks import CheckThresholds, RealNotesIndex, note_check
from .models import GenerationItem, GenerationJob, ModelConfig, Note, PromptTemplate
from .planning import DEFAULT_MIN_WORDS, Plan, PlanError, examples_group, plan_build
from .prompts import PromptTooLongError, prompt_build_from_template
from .selectors import prompt_template_current
from .services import note_content_hash

logger = logging.getLogger("medsyn.generation")

SOURCE_DATASET = "MedSyn Studio"
SAMPLING_OVERRIDES = ("temperature", "top_p", "max_new_tokens")


@dataclass(frozen=True)
class PlanRequest:
    """What a user asks for; stored as the job's parameters."""

    categories: list[str] | None
    budget: int
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


def examples_load(categories: list[str] | None, *, min_words: int) -> dict[str, list]:
    """Real notes usable as examples, grouped by category (all categories when none are chosen)."""
    notes = Note.objects.filter(origin=Note.Origin.REAL)
    if categories:
        notes = notes.filter(icd_category__in=categories)
    return examples_group(notes.values_list("id", "icd_category", "text").iterator(), min_words=min_words)


def plan_compute(request: PlanRequest, *, data: SamplingData | None = None) -> Plan:
    """The plan for a request over the current graph and the real-note corpus (PlanError when impossible)."""
    data = data or sampling_data_load(get_graph_store())
    return plan_build(
        data, categories=request.categories, budget=request.budget, seed=request.seed,
        examples=examples_load(request.categories, min_words=request.min_words),
        allocation=request.allocation,  # type: ignore[arg-type]
        explicit_counts=request.explicit_counts, overrides=request.overrides,
        symptom_mode=request.symptom_mode,  # type: ignore[arg-type]
        language=request.language,
    )


def job_plan_preview(request: PlanRequest) -> Plan:
    """The plan a job would run; its rows are the preview table (count, weight, N_exmp, N_symp)."""
    return plan_compute(request)


def item_prompt_rng(seed: int, index: int) -> random.Random:
    return random.Random(f"{seed}:prompt:{index}")


def queue_for(config: ModelConfig) -> str:
    return "gpu" if config.backend == ModelConfig.Backend.LOCAL else "api"


def job_enqueue(job: GenerationJob) -> None:
    """Send the job to its worker queue once the surrounding transaction has committed."""
    from .tasks import run_generation_job

    queue = queue_for(job.model_config)
    transaction.on_commit(lambda: run_generation_job.apply_async(args=[job.pk], queue=queue))


@transaction.atomic
def do_create_job(
    *,
    request: PlanRequest,
    model_config: ModelConfig,
    user: AbstractBaseUser | None = None,
    prompt_template: PromptTemplate | None = None,
    budget_cap: Decimal | None = None,
    enqueue: bool = True,
    data: SamplingData | None = None,
) -> GenerationJob:
    """Plan, build every item's prompt, store the job and all its items in one transaction, then enqueue it."""
    plan = plan_compute(request, data=data)
    if not plan.tasks:
        raise PlanError("the plan has no tasks")
    template = prompt_template or prompt_template_current(variant=request.variant, language=request.language)
    names = {row.category: row.name for row in plan.rows}
    job = GenerationJob.objects.create(
        parameters=request.as_parameters(), model_config=model_config, prompt_template=template, seed=request.seed,
        graph_version=plan.graph_version or "", planned=plan.total, budget_cap=budget_cap,
        created_by=user if user is not None and user.is_authenticated else None,
    )
    items, skipped = [], 0
    for task in plan.tasks:
        item = GenerationItem(job=job, index=task.index, category=task.category, donor_code=task.donor_code or "",
                              symptoms=list(task.symptoms), example_note_id=task.example_note_id,
                              example_text=task.example_text)
        try:
            built = prompt_build_from_template(
                template, rng=item_prompt_rng(request.seed, task.index), symptoms=list(task.symptoms),
                example=task.example_text, disease_name=names.get(task.category, task.category),
                code=task.donor_code or task.category,
            )
            item.prompt_system, item.prompt_user = built.system, built.user
        except PromptTooLongError as error:
            item.status, item.error = GenerationItem.Status.SKIPPED, error.skip_reason
            skipped += 1
        items.append(item)
    GenerationItem.objects.bulk_create(items, batch_size=1000)
    if skipped:
        GenerationJob.objects.filter(pk=job.pk).update(skipped=skipped)
        job.skipped = skipped
    if enqueue:
        job_enqueue(job)
    return job


@transaction.atomic
def do_cancel_job(*, job: GenerationJob) -> GenerationJob:
    """Stop a job between batches; items already done keep their notes."""
    updated = GenerationJob.objects.filter(pk=job.pk, status__in=[GenerationJob.Status.QUEUED,
                                                                  GenerationJob.Status.RUNNING])
    updated.update(status=GenerationJob.Status.CANCELLED, finished_at=timezone.now())
    job.refresh_from_db()
    return job


@transaction.atomic
def do_resume_job(*, job: GenerationJob) -> GenerationJob:
    """Run a stopped (or stalled) job again: its pending items and, once more, the items that failed."""
    job = GenerationJob.objects.select_for_update().get(pk=job.pk)
    if not job.resumable:
        return job
    retried = job.items.filter(status=GenerationItem.Status.FAILED).update(status=GenerationItem.Status.PENDING,
                                                                          error="")
    job.failed = max(0, job.failed - retried)
    job.status, job.finished_at, job.error = GenerationJob.Status.QUEUED, None, ""
    job.save(update_fields=["failed", "status", "finished_at", "error", "updated_at"])
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
    known = {f.name for f in dataclasses.fields(CheckThresholds)}
    return CheckThresholds(**{k: v for k, v in job.parameters.get("checks", {}).items() if k in known})


def note_provenance(job: GenerationJob, config: ModelConfig, item: GenerationItem, result: GenerationResult,
                    report: dict[str, Any]) -> dict[str, Any]:
    template = job.prompt_template
    parameters = job.parameters
    return {
        "job_id": job.pk,
        "generation_model": config.name,
        "prompt_variant": template.variant,
        "model_config": {"id": config.pk, "name": config.name, "backend": config.backend,
                         "path": config.model_path, "gguf_file": config.gguf_file,
                         "endpoint": config.base_url, "api_model": config.api_model,
                         "adapter": config.adapter_path, "revision": config.revision,
                         "temperature": config.temperature, "top_p": config.top_p,
                         "max_new_tokens": config.max_new_tokens},
        "prompt_template": {"id": template.pk, "name": template.name, "version": template.version},
        "prompt": {"system": item.prompt_system, "user": item.prompt_user},
        "symptoms": item.symptoms,
        "donor_code": item.donor_code,
        "example_note_id": item.example_note_id,
        "example_text": item.example_text,
        "graph_version": job.graph_version,
        "seed": job.seed,
        "item_index": item.index,
        "sampling": {key: parameters.get(key) for key in ("allocation", "symptom_mode", "min_words", "budget",
                                                           "categories", "explicit_counts", "overrides")},
        "tokens": {"prompt": result.prompt_tokens, "completion": result.completion_tokens},
        "latency_s": result.latency_s,
        "attempts": result.attempts,
        "checks": report,
    }


def result_clean(result: GenerationResult) -> GenerationResult:
    """PostgreSQL text cannot hold NUL characters (a small model may emit them): drop them; nothing left is an error."""
    if not result.ok or "\x00" not in result.text:
        return result
    text = result.text.replace("\x00", "").strip()
    return dataclasses.replace(result, text=text, error=None if text else "empty completion")


def item_record(job: GenerationJob, config: ModelConfig, item_id: int, result: GenerationResult,
                thresholds: CheckThresholds, real_notes: RealNotesIndex | None = None,
                scorer: BertScorer | None = None) -> str | None:
    """Store one result: note + item status + job counters in one transaction. Returns the new item status,
    or None when the item was no longer pending (done by an earlier delivery of the task)."""
    result = result_clean(result)
    with transaction.atomic():
        item = GenerationItem.objects.select_for_update().get(pk=item_id)
        if item.status != GenerationItem.Status.PENDING:
            return None
        counters: dict[str, Any] = {"prompt_tokens": F("prompt_tokens") + result.prompt_tokens,
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
            example = item.example_text if job.prompt_template.variant == "symptoms_example" else ""
            report = note_check(result.text, language=language, symptoms=item.symptoms, example=example,
                                prompt=f"{item.prompt_system}\n{item.prompt_user}", thresholds=thresholds,
                                real_notes=real_notes, scorer=scorer).as_dict()
            code = item.donor_code or item.category
            digest = note_content_hash(origin=Note.Origin.SYNTHETIC, icd_code=code, text=result.text)
            try:
                with transaction.atomic():
                    note = Note.objects.create(
                        origin=Note.Origin.SYNTHETIC, text=result.text, icd_code=code, icd_category=item.category,
                        language=language, source_dataset=SOURCE_DATASET, content_hash=digest,
                        metadata=note_provenance(job, config, item, result, report),
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
    GenerationJob.objects.filter(pk=job_id, status=GenerationJob.Status.RUNNING).update(
        status=status, error=error, finished_at=timezone.now())


def job_execute(job_id: int) -> None:
    """Run the pending items of a job in batches; cancel and the budget cap are checked between batches."""
    started = GenerationJob.objects.filter(pk=job_id, status__in=[GenerationJob.Status.QUEUED,
                                                                  GenerationJob.Status.RUNNING])
    if not started.update(status=GenerationJob.Status.RUNNING):
        return  # finished or cancelled before this delivery
    GenerationJob.objects.filter(pk=job_id, started_at__isnull=True).update(started_at=timezone.now())
    job = GenerationJob.objects.select_related("prompt_template").get(pk=job_id)
    config = model_config_for_job(job)
    try:
        backend = backend_for(config)
    except Exception as error:  # a missing model directory, for example: nothing can run
        logger.exception("backend unavailable", extra={"job_id": job_id})
        _finish(job_id, GenerationJob.Status.FAILED, f"{type(error).__name__}: {error}")
        return
    try:
        _batches_run(job, config, backend)
    except Exception as error:  # the job page must not show "running" forever; the task records the traceback
        _finish(job_id, GenerationJob.Status.FAILED, f"{type(error).__name__}: {error}")
        raise


def _batches_run(job: GenerationJob, config: ModelConfig, backend: GenerationBackend) -> None:
    """Pending items in index order, config.batch_size at a time, until none is left, a cancel, or the cap."""
    job_id = job.pk
    thresholds = check_thresholds_for(job)
    real_notes = RealNotesIndex.from_database()  # memorisation check against every real note, read once
    scorer = bert_scorer_configured()
    while True:
        job.refresh_from_db()
        if job.status != GenerationJob.Status.RUNNING:
            return  # cancelled
        batch = list(job.items.filter(status=GenerationItem.Status.PENDING).order_by("index")[:config.batch_size])
        if not batch:
            break
        if _budget_exhausted(job, len(batch)):
            with transaction.atomic():
                left = job.items.filter(status=GenerationItem.Status.PENDING).update(
                    status=GenerationItem.Status.SKIPPED, error="budget cap reached")
                GenerationJob.objects.filter(pk=job_id).update(skipped=F("skipped") + left)
            _finish(job_id, GenerationJob.Status.DONE, f"budget cap reached: {left} item(s) not run")
            return
        requests = [GenerationRequest(key=str(item.pk), system=item.prompt_system, user=item.prompt_user)
                    for item in batch]
        results = backend.generate(requests)
        for item, result in zip(batch, results, strict=True):
            item_record(job, config, item.pk, result, thresholds, real_notes, scorer)
    job.refresh_from_db()
    if job.ok == 0 and job.failed > 0:
        _finish(job_id, GenerationJob.Status.FAILED, "no item could be generated; see the item errors")
    else:
        _finish(job_id, GenerationJob.Status.DONE)
