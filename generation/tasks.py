"""Celery tasks of the generation app: run_generation_job goes to "gpu" (local models) or "api" (API models)."""

from __future__ import annotations

from celery import shared_task

from .jobs import job_execute


@shared_task(name="generation.run_generation_job", acks_late=True, reject_on_worker_lost=True)
def run_generation_job(job_id: int) -> None:
    """Idempotent: a redelivery (worker killed mid-job) only runs the items still pending."""
    job_execute(job_id)


@shared_task(name="generation.run_symptom_extraction", acks_late=True)
def run_symptom_extraction(model_config_id: int, categories: list[str], notes_per_category: int = 20) -> dict:
    from .enrichment import enrichment_run
    from .models import ModelConfig

    return enrichment_run(model_config=ModelConfig.objects.get(pk=model_config_id), categories=categories,
                          notes_per_category=notes_per_category)


@shared_task(name="generation.run_note_import", acks_late=True)  # queue "default"
def run_note_import(job_id: int) -> None:
    """All or nothing (one transaction); a redelivery of a finished job does nothing."""
    from pathlib import Path

    from .models import NoteImportJob
    from .services import NoteImportError, medsyn_csv_import, real_notes_import

    job = NoteImportJob.objects.filter(pk=job_id).first()
    if job is None or job.finished:
        return
    NoteImportJob.objects.filter(pk=job.pk).update(status=NoteImportJob.Status.RUNNING)
    last = {"percent": -1}

    def progress(done: int, total: int) -> None:
        percent = int(100 * done / total) if total else 100
        if percent != last["percent"]:
            last["percent"] = percent
            NoteImportJob.objects.filter(pk=job.pk).update(progress=percent)

    path = Path(job.upload.path)
    try:
        if job.kind == NoteImportJob.Kind.RUMEDTOP3:
            counts = real_notes_import(path=path, split=job.split or "train", progress=progress)
        else:
            counts = medsyn_csv_import(path=path, progress=progress)
    except NoteImportError as error:
        NoteImportJob.objects.filter(pk=job.pk).update(
            status=NoteImportJob.Status.FAILED, errors=[{"line": line, "message": m} for line, m in error.problems])
        return
    except Exception as error:  # shown on the job page; nothing was written (one transaction)
        NoteImportJob.objects.filter(pk=job.pk).update(
            status=NoteImportJob.Status.FAILED, errors=[{"line": 0, "message": f"{type(error).__name__}: {error}"}])
        raise
    NoteImportJob.objects.filter(pk=job.pk).update(status=NoteImportJob.Status.DONE, progress=100,
                                                   created=counts.created, skipped=counts.skipped)
