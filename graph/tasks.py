"""The Celery job behind the admin upload page (queue "default")."""

from __future__ import annotations

from pathlib import Path

from celery import shared_task

from .models import ImportJob
from .payload import GraphInputError


def import_job_execute(job: ImportJob) -> None:
    """Run one uploaded import and record progress, errors and the resulting version on the job."""
    from .importers import generic_payload, icd10_ru_payload
    from .services import graph_import

    path = Path(job.upload.path)
    last = {"percent": -1}

    def progress(step: str, fraction: float) -> None:
        percent = int(fraction * 100)
        if percent != last["percent"]:
            last["percent"] = percent
            ImportJob.objects.filter(pk=job.pk).update(progress=percent, step=step)

    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.RUNNING)
    parse = (lambda: generic_payload(path)) if job.kind == ImportJob.Kind.GENERIC else (lambda: icd10_ru_payload(path))
    try:
        outcome = graph_import(source=f"upload:{job.kind}", files=[path], parse=parse,
                               check_endpoints=job.kind == ImportJob.Kind.GENERIC, progress=progress)
    except GraphInputError as error:
        ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.FAILED, errors=error.report())
        return
    except Exception as error:  # the job page shows the reason; the previous graph stays published
        ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.FAILED,
                                                   errors=[{"line": 0, "message": f"{type(error).__name__}: {error}"}])
        raise
    status = ImportJob.Status.DONE if outcome.changed else ImportJob.Status.UNCHANGED
    ImportJob.objects.filter(pk=job.pk).update(status=status, progress=100, step="done", version=outcome.version)


@shared_task(name="graph.import_job_run", acks_late=True)  # CELERY_TASK_DEFAULT_QUEUE: "default"
def graph_import_job_run(job_id: int) -> None:
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is not None and not job.finished:
        import_job_execute(job)
