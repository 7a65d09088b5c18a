"""Celery tasks of curation (queue "default"): the scans. Their shards are core.run_chunk tasks (core.chunks)."""

from __future__ import annotations

from celery import shared_task


@shared_task(name="review.run_scan", acks_late=True, reject_on_worker_lost=True)
def run_scan(scan_id: int) -> None:
    """The scan's own task: freeze its notes and send its shards. Idempotent: a scan sent again keeps its notes and
    sends only the shards with notes still to do; a shard never does a note twice."""
    from .scans import scan_run

    scan_run(scan_id)
