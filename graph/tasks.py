"""The Celery job behind the admin upload page (queue "default")."""

from __future__ import annotations

from celery import shared_task

from medsyn_site.core.errors import InputError
from medsyn_site.core.models import JobStatus
from medsyn_site.core.progress import ProgressRecorder

from .models import ImportJob


def import_job_execute(job: ImportJob) -> None:
    """Run one uploaded import and record progress, errors and the resulting version on the job.

    The uploaded file is kept only when the import published a new version (its provenance); a failed import and
    one whose content was already in the graph delete it (ImportJob.upload_delete), the job keeps its name."""
    from .importers import generic_payload, icd10_ru_payload
    from .services import graph_import

    if not job.mark_running():
        return
    name = job.original_name
    payload = generic_payload if job.kind == ImportJob.Kind.GENERIC else icd10_ru_payload
    try:
        with job.upload_local() as path, ProgressRecorder(job) as progress:
            outcome = graph_import(source=f"upload:{job.kind}", files=[path], parse=lambda: payload(path, name=name),
                                   check_endpoints=job.kind == ImportJob.Kind.GENERIC, progress=progress)
    except InputError as error:
        error.source = name  # problems of the file, named as it was uploaded (not as stored)
        if job.mark_finished(JobStatus.FAILED, error=str(error), errors=error.report()):
            job.upload_delete()
        return
    except Exception as error:  # the job page shows the reason; the previous graph stays published
        if job.mark_finished(JobStatus.FAILED, error=f"{type(error).__name__}: {error}"):
            job.upload_delete()
        raise
    if job.mark_finished(JobStatus.DONE, changed=outcome.changed, version=outcome.version) and not outcome.changed:
        job.upload_delete()


@shared_task(name="graph.import_job_run", acks_late=True)  # CELERY_TASK_DEFAULT_QUEUE: "default"
def graph_import_job_run(job_id: int) -> None:
    job = ImportJob.objects.filter(pk=job_id).first()
    if job is not None and not job.finished:
        import_job_execute(job)
