"""Celery tasks of the review app (queue "default"): curation scans and release exports."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="review.run_scan", acks_late=True, reject_on_worker_lost=True)
def run_scan(scan_id: int) -> None:
    """Idempotent: a redelivered scan recomputes every flag it writes."""
    from .scans import scan_run

    scan_run(scan_id)


@shared_task(name="review.run_release_export", acks_late=True, reject_on_worker_lost=True)
def run_release_export(release_id: int) -> None:
    """Idempotent: a redelivery writes the folder again aside and swaps it in; a finished export is left alone."""
    from .releases import release_export_run

    release_export_run(release_id)
