"""MKG enrichment: an LLM extracts symptoms from real notes (METHOD.md's prompt, temperature 0.2); each
becomes a proposed HAS_SYMPTOM edge with source "llm" that enters the graph only when a researcher accepts it.

An extraction is a background job (SymptomExtractionJob) on the model's worker queue, run in chunks of its notes like
a generation job (core.chunks), so every worker of that queue, on any host, takes part: its progress in notes, each
note's proposals committed once, as soon as the model has answered for it (the enrichment page polls and shows them as
they come), and a cancel that stops the running batches at their next check.
"""

from __future__ import annotations

import contextlib
import json
import re
import tempfile
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from graph.schema import symptom_key
from medsyn_site.core.audit import audit_record, audit_write, audit_write_many
from medsyn_site.core.chunks import chunks_dispatch
from medsyn_site.core.icd10 import icd_category_clean
from medsyn_site.core.jobs import job_cancel, job_send_on_commit
from medsyn_site.core.models import AuditEvent, JobChunk, JobPhase, JobStatus
from medsyn_site.core.progress import ProgressRecorder

from .backends.base import GenerationBackend, GenerationCancelled, GenerationRequest, GenerationResult, backend_for
from .jobs import JobWatch, chunk_size_for
from .models import ModelConfig, Note, SymptomExtractionJob, SymptomProposal

EXTRACTION_SYSTEM = "Ты — врач. Отвечай только списком, без комментариев."
EXTRACTION_USER = ("Выпиши из текста все симптомы, а не болезни, по одному на строку, без нумерации и без "
                   "комментариев.\n\nТекст: {text}")
EXTRACTION_TEMPERATURE = 0.2
_BULLET = re.compile(r"^\s*(?:[-*•–—]+|\d+[.)])\s*")
MAX_SYMPTOM_CHARS = 80
NOTES_PER_CATEGORY = 20


def symptoms_parse(answer: str) -> list[str]:
    """One symptom per line; bullets, numbering, trailing punctuation and chatter lines are dropped."""
    found: dict[str, str] = {}
    for line in answer.splitlines():
        text = _BULLET.sub("", line).strip().strip(".;,").strip()
        if not text or len(text) > MAX_SYMPTOM_CHARS or text.endswith(":") or not re.search(r"[а-яё]", text, re.I):
            continue
        found.setdefault(symptom_key(text), text.lower())
    return list(found.values())


def extraction_notes(categories: list[str], notes_per_category: int) -> list[int]:
    """The real notes an extraction reads: the first notes_per_category of each category, by id."""
    ids: list[int] = []
    for category in categories:
        ids += list(Note.objects.filter(origin=Note.Origin.REAL, icd_category=category).order_by("id")
                    .values_list("id", flat=True)[:notes_per_category])
    return ids


def extraction_config(model_config: ModelConfig) -> ModelConfig:
    """A copy of the model's configuration (not saved) at the extraction's temperature."""
    config = ModelConfig(**{f.name: getattr(model_config, f.name) for f in ModelConfig._meta.concrete_fields})
    config.temperature = EXTRACTION_TEMPERATURE
    return config


def note_read_record(job: SymptomExtractionJob, note: Note, result: GenerationResult) -> int | None:
    """One note's answer: its proposals (a symptom already proposed for the category counts the note once), the note
    among the job's notes read and the job's counters, in one transaction. Returns the proposals it created, or None
    when the job had read the note already (an earlier delivery of the task)."""
    with transaction.atomic():
        job = SymptomExtractionJob.objects.select_for_update().get(pk=job.pk)
        if note.pk in job.notes_read:
            return None
        created_count = 0
        for symptom in symptoms_parse(result.text) if result.ok else []:
            proposal, created = SymptomProposal.objects.select_for_update().get_or_create(
                category=note.icd_category, symptom_key=symptom_key(symptom),
                defaults={"symptom": symptom, "model_config_id": job.model_config_id})
            created_count += int(created)
            if note.pk not in proposal.note_ids:
                proposal.note_ids = [*proposal.note_ids, note.pk]
                proposal.save(update_fields=["note_ids"])
        job.notes_read = [*job.notes_read, note.pk]
        job.progress_done = len(job.notes_read)
        job.failed += int(not result.ok)
        job.proposals_new += created_count
        job.save(update_fields=["notes_read", "progress_done", "failed", "proposals_new", "updated_at"])
        return created_count


class NotesWatch(JobWatch):
    """An extraction's watch: each note's proposals are committed as soon as the model has answered for it."""

    def __init__(self, job: SymptomExtractionJob, recorder: ProgressRecorder, notes: dict[int, Note]) -> None:
        super().__init__(job, recorder)
        self.notes = notes

    def result(self, result: GenerationResult) -> None:
        note_read_record(self.job, self.notes[int(result.key)], result)


def symptom_extraction_execute(job_id: int) -> None:
    """The extraction's own task (a finished or cancelled one is left alone): choose its notes the first time (their
    order in note_ids, kept, is the units of its chunks: a chunk sent again reads the same notes), then share out the
    notes not read yet in chunks on its model's queue (core.chunks; outside a worker they run here, one after
    another)."""
    job = SymptomExtractionJob.objects.select_related("model_config").filter(pk=job_id).first()
    if job is None or not job.mark_running():
        return
    with ProgressRecorder(job, min_interval=0) as recorder:
        recorder.phase_set(JobPhase.RUNNING)  # this run's activity: a previous run's samples are dropped
    try:
        with transaction.atomic():  # under the job's row lock: two deliveries at once choose them once
            job = SymptomExtractionJob.objects.select_for_update().select_related("model_config").get(pk=job.pk)
            if not job.note_ids:
                ids = extraction_notes(job.categories, job.notes_per_category)
                SymptomExtractionJob.objects.filter(pk=job.pk).update(note_ids=ids, progress_total=len(ids),
                                                                      updated_at=timezone.now())
                job.refresh_from_db()
    except Exception as error:  # the page must not show "running" for ever; the task records the traceback
        job.mark_finished(JobStatus.FAILED, error=f"{type(error).__name__}: {error}")
        raise
    read = set(job.notes_read)
    chunks_dispatch(job, end=len(job.note_ids), size=chunk_size_for(extraction_config(job.model_config)),
                    pending=[index for index, note_id in enumerate(job.note_ids) if note_id not in read])


def extraction_chunk_execute(job: SymptomExtractionJob, chunk: JobChunk) -> bool:
    """Run one chunk of an extraction (core.chunks): load the model (once per worker process: the backends keep it),
    then ask for the symptoms of the chunk's notes not read yet, batch_size notes at a time; each note's proposals are
    committed as it is read (note_read_record: once), a cancel stops the running batch at the next check (JobWatch).
    True when the chunk has no note left to read."""
    job = SymptomExtractionJob.objects.select_related("model_config").get(pk=job.pk)
    config = extraction_config(job.model_config)
    with ProgressRecorder(job, min_interval=0, shared=True) as recorder:
        try:
            loading = config.backend == ModelConfig.Backend.LOCAL
            with recorder.phase(JobPhase.LOADING_MODEL) if loading else contextlib.nullcontext():
                backend = backend_for(config)
            return _chunk_notes_read(job, config, backend, recorder, chunk)
        except Exception as error:  # the page must not show "running" for ever; the task records the traceback
            job.mark_finished(JobStatus.FAILED, error=f"{type(error).__name__}: {error}")
            raise


def extraction_chunks_finish(job: SymptomExtractionJob) -> None:
    """Every chunk is done (core.chunks, under the job's row lock): the extraction is done (notes the model could not
    answer for are counted in failed)."""
    job.mark_finished(JobStatus.DONE)


def _chunk_notes_read(job: SymptomExtractionJob, config: ModelConfig, backend: GenerationBackend,
                      recorder: ProgressRecorder, chunk: JobChunk) -> bool:
    """Read the chunk's notes not read yet; False when the job was cancelled meanwhile."""
    read = set(job.notes_read)
    pending = [note_id for note_id in job.note_ids[chunk.first:chunk.end] if note_id not in read]
    notes = Note.objects.in_bulk(pending)
    watch = NotesWatch(job, recorder, notes)
    batch_size = max(1, config.batch_size)
    for start in range(0, len(pending), batch_size):
        job.refresh_from_db()
        if job.status != JobStatus.RUNNING:
            return False
        batch = [notes[note_id] for note_id in pending[start:start + batch_size] if note_id in notes]
        watch.batch_start(job)
        try:
            backend.generate([GenerationRequest(key=str(note.pk), system=EXTRACTION_SYSTEM,
                                                user=EXTRACTION_USER.format(text=note.text)) for note in batch],
                             watch=watch)
        except GenerationCancelled:
            return False
    return True


@transaction.atomic
def do_start_symptom_extraction(*, actor: AbstractBaseUser | None, model_config: ModelConfig, categories: list[str],
                                notes_per_category: int = NOTES_PER_CATEGORY,
                                enqueue: bool = True) -> SymptomExtractionJob:
    """Start an extraction of the symptoms of real notes of these ICD-10 categories on the model's worker queue
    (sent once committed, with its audit record). ValidationError when there is no category or one is not a
    category, or the model is the template filler."""
    if model_config.backend == ModelConfig.Backend.TEMPLATE:
        raise ValidationError(_("%(model)s fills templates and reads no text: choose a language model to extract "
                                "symptoms.") % {"model": model_config.name})
    chosen, bad = set(), []
    for raw in filter(str.strip, categories):  # blank entries (a trailing comma) name nothing
        try:
            chosen.add(icd_category_clean(raw))
        except ValueError:
            bad.append(raw.strip())
    if bad:
        raise ValidationError(f"Not ICD-10 categories (a letter and two digits): {', '.join(bad)}.")
    if not chosen:
        raise ValidationError("Name at least one ICD-10 category.")
    chosen_sorted = sorted(chosen)
    job = SymptomExtractionJob.objects.create(
        model_config=model_config, categories=chosen_sorted, notes_per_category=notes_per_category,
        created_by=actor if actor is not None and actor.is_authenticated else None)
    audit_write(actor=actor, action=AuditEvent.START_SYMPTOM_EXTRACTION, obj=model_config,
                extra={"categories": chosen_sorted, "notes_per_category": notes_per_category, "job_id": job.pk})
    if enqueue:
        job_send_on_commit(job)
    return job


@transaction.atomic
def do_cancel_symptom_extraction(*, job: SymptomExtractionJob,
                                 actor: AbstractBaseUser | None) -> SymptomExtractionJob:
    """Stop a queued or running extraction: its worker stops at its next check (JobWatch); the proposals of the notes
    read so far stay. StateConflict when it has already finished."""
    return job_cancel(job, actor=actor, event=AuditEvent.CANCEL_SYMPTOM_EXTRACTION,
                      already_finished=_("Extraction %(id)s has already finished (%(status)s): nothing to cancel."),
                      extra=lambda job: {"notes_read": job.progress_done, "proposals_new": job.proposals_new})


def do_review_symptom_proposals(*, actor: AbstractBaseUser, proposals: list[SymptomProposal], accept: bool) -> int:
    """Accept (publish as HAS_SYMPTOM edges with source "llm", one new graph version) or reject proposals.

    The graph is published first (it is not in the database's transaction); then each proposal still proposed
    changes state with its own audit record, in one transaction. Returns how many changed."""
    from graph.importers import generic_payload
    from graph.services import graph_import

    pending = [p for p in proposals if p.status == SymptomProposal.Status.PROPOSED]
    if not pending:
        return 0
    version = ""
    if accept:
        rows = []
        for p in pending:
            rows.append({"kind": "node", "label": "Symptom", "key": p.symptom_key, "props": {"name": p.symptom}})
            rows.append({"kind": "edge", "type": "HAS_SYMPTOM", "from": {"label": "Category", "key": p.category},
                         "to": {"label": "Symptom", "key": p.symptom_key}, "source": "llm",
                         "props": {"count": p.support}})
        with tempfile.TemporaryDirectory(prefix="medsyn-enrich-") as tmp:
            path = Path(tmp) / f"llm-symptoms-{timezone.now():%Y%m%dT%H%M%S}.jsonl"
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            outcome = graph_import(source="llm-enrichment", files=[path], parse=lambda: generic_payload(path),
                                   check_endpoints=True)
        version = str(outcome.version.pk)
    status = SymptomProposal.Status.ACCEPTED if accept else SymptomProposal.Status.REJECTED
    event = AuditEvent.ACCEPT_SYMPTOM_PROPOSAL if accept else AuditEvent.REJECT_SYMPTOM_PROPOSAL
    with transaction.atomic():
        # Another reviewer may have decided some of them meanwhile: theirs stand, and have their own records.
        changed = list(SymptomProposal.objects.select_for_update().filter(
            pk__in=[p.pk for p in pending], status=SymptomProposal.Status.PROPOSED))
        now = timezone.now()
        for proposal in changed:
            proposal.status, proposal.reviewed_by, proposal.reviewed_at = status, actor, now
            proposal.graph_version = version
        SymptomProposal.objects.bulk_update(changed, ["status", "reviewed_by", "reviewed_at", "graph_version"])
        audit_write_many(audit_record(actor=actor, action=event, obj=proposal,
                                      from_state=SymptomProposal.Status.PROPOSED, to_state=status,
                                      extra={"category": proposal.category, "symptom": proposal.symptom,
                                             "support": proposal.support, "graph_version": version})
                         for proposal in changed)
    return len(changed)
