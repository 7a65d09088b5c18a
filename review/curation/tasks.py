"""Celery tasks of curation (queue "default"): the scans."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="review.run_scan", acks_late=True, reject_on_worker_lost=True)
def run_scan(scan_id: int) -> None:
    """Idempotent: a redelivered scan recomputes every flag it writes."""
    from .scans import scan_run

    scan_run(scan_id)
