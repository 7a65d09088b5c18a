"""System tasks: a round trip that proves a worker on a queue is alive and runs our code."""

from __future__ import annotations

import os
import socket

from celery import shared_task


@shared_task(name="medsyn_site.echo", bind=True)
def echo(self, payload: dict) -> dict:
    return {
        "payload": payload,
        "task_id": self.request.id,
        "queue": (self.request.delivery_info or {}).get("routing_key"),
        "hostname": self.request.hostname or socket.gethostname(),
        "pid": os.getpid(),
    }
