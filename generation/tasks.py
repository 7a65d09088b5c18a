"""Celery tasks of the generation app: run_generation_job goes to "gpu" (local models) or "api" (API models)."""

from __future__ import annotations

from celery import shared_task

from medsyn_site.core.errors import InputError

from .enrichment import symptom_extraction_execute
from .jobs import job_execute
from .models import NoteImportJob
from .services import do_import_notes


@shared_task(name="generation.run_generation_job", acks_late=True, reject_on_worker_lost=True)
def run_generation_job(job_id: int) -> None:
    """Idempotent: a redelivery (worker killed mid-job) only runs the items still pending."""
    job_execute(job_id)


@shared_task(name="generation.run_symptom_extraction", acks_late=True, reject_on_worker_lost=True)
def run_symptom_extraction(job_id: int) -> None:
    """The extraction's own task: it chooses its notes once and shares them out in chunks (core.run_chunk tasks on the
    same queue). Idempotent: a redelivery sends only the chunks with notes not read yet; no note is read twice."""
    symptom_extraction_execute(job_id)


@shared_task(name="generation.run_note_import", acks_late=True)  # queue "default"
def run_note_import(job_id: int) -> None:
    """All or nothing (one transaction); a redelivery of a finished job does nothing. A file with problems fails
    the job with them by line (services.do_import_notes): that is the job's outcome, not a failure of the task."""
    job = NoteImportJob.objects.filter(pk=job_id).first()
    if job is None:
        return
    try:
        do_import_notes(job=job)
    except InputError:
        return
