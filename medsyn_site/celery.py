"""The Celery application: queues gpu (local models, solo pool), gpu.cuda (local models that need CUDA: consumed
only by workers that have it), api (API models) and default; beat's schedule (the sweep of stalled work)."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

from celery import Celery, signals
from kombu import Queue

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medsyn_site.settings.local")

app = Celery("medsyn_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [Queue("gpu"), Queue("gpu.cuda"), Queue("api"), Queue("default")]
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _beat_schedule(sender: Celery, **_: object) -> None:
    """Celery beat (one per deployment: `celery -A medsyn_site beat`) runs the sweep of stalled work (core.jobs)
    every JOB_SWEEP_SECONDS on the default queue; a sweep not taken within a minute is dropped (the next one comes)."""
    from django.conf import settings

    sender.add_periodic_task(float(settings.JOB_SWEEP_SECONDS), sender.signature("core.sweep"),
                             name="sweep stalled work", queue="default", expires=60)

logger = logging.getLogger("medsyn.tasks")
_task_started: dict[str, float] = {}


@signals.task_prerun.connect
def _log_task_start(task_id: str, task, **_: object) -> None:
    _task_started[task_id] = time.monotonic()
    logger.info("task started", extra={"task_id": task_id, "task": task.name})


@signals.task_postrun.connect
def _log_task_end(task_id: str, task, state: str | None = None, **_: object) -> None:
    started = _task_started.pop(task_id, None)
    duration = round(time.monotonic() - started, 4) if started is not None else None
    logger.info(
        "task finished", extra={"task_id": task_id, "task": task.name, "state": state, "duration_s": duration}
    )


class WorkerHeartbeat:
    """Writes a short-lived key per consumed queue into Redis: the broker's, or the result backend's for AMQP.

    The status page reads these keys: a key that expired means the worker for that queue is gone. Each beat also
    writes the process's boot id and what it can run (core.workers), and sweeps for the work of dead workers
    (core.jobs.stalled_work_requeue; Celery beat runs the same sweep, one at a time).
    A thread, not the task loop, so a long model call in the solo pool does not look like a death.
    """

    def __init__(self, hostname: str, queues: list[str]) -> None:
        from medsyn_site.core.workers import capabilities_detect

        self.hostname = hostname
        self.queues = queues
        # Detected here, in the worker's main thread, before the first beat: detection may import torch, which a
        # second thread must not do while the main one imports it for a task (import locks).
        self.capabilities = capabilities_detect(hostname, queues)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="medsyn-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def beat(self) -> bool:
        """Write one heartbeat per queue; False when no Redis can hold them (see health.heartbeat_store_url)."""
        from django.conf import settings

        from medsyn_site.health import heartbeat_key, heartbeat_store_url, redis_client

        store = heartbeat_store_url()
        if store is None:
            return False
        from medsyn_site.core.jobs import worker_boot_write
        from medsyn_site.core.workers import capabilities_write

        client = redis_client(store)
        for queue in self.queues:
            client.set(heartbeat_key(queue, self.hostname), str(os.getpid()), ex=settings.WORKER_HEARTBEAT_TTL_SECONDS)
        worker_boot_write(client, self.hostname)
        capabilities_write(client, self.capabilities)
        self.sweep(client)
        return True

    @staticmethod
    def sweep(client) -> None:
        """Send again the work of workers that died (core.jobs); a database that is down is the next beat's problem."""
        from django.db import close_old_connections

        from medsyn_site.core.jobs import stalled_work_requeue

        try:
            stalled_work_requeue(client)
        except Exception:
            logger.warning("sweep of dead workers' jobs failed", exc_info=True)
        finally:
            close_old_connections()

    def _run(self) -> None:
        from django.conf import settings

        while not self._stop.is_set():
            try:
                if not self.beat():
                    logger.warning("worker heartbeats off: neither the broker nor the result backend is Redis")
                    return
            except Exception:  # Redis may be down; try again next beat
                logger.warning("worker heartbeat failed", exc_info=True)
            self._stop.wait(settings.WORKER_HEARTBEAT_SECONDS)


_heartbeat: WorkerHeartbeat | None = None


@signals.worker_ready.connect
def _start_heartbeat(sender, **_: object) -> None:
    global _heartbeat
    queues = sorted(q.name for q in sender.app.amqp.queues.consume_from.values())
    hostname = getattr(sender, "hostname", socket.gethostname())
    _heartbeat = WorkerHeartbeat(hostname, queues)
    _heartbeat.start()
    logger.info("worker ready", extra={"hostname": hostname, "queues": queues})


@signals.worker_shutdown.connect
def _stop_heartbeat(**_: object) -> None:
    if _heartbeat is not None:
        _heartbeat.stop()
