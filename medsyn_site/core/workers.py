"""What a worker can run: its device, its memory and the models on its disk, advertised beside its heartbeat.

Every worker process writes its capabilities to Redis (the heartbeat store, medsyn_site.health.heartbeat_store_url)
under its Celery hostname, with the heartbeat's time to live: a worker that dies disappears from the list. A job
states what its model needs (Requirements: a device, memory); `requirements_unmet(requirements, capabilities)` says
why a worker cannot run it (None: it can). A chunk is taken only by a worker that can run it (core.chunks), so a job
for a 7B model on CUDA is never run by a CPU worker, and the job says when no live worker can run it.

Detection, overridable by settings (MEDSYN_WORKER_DEVICE, MEDSYN_WORKER_MEMORY_GB):
- device: "cuda" when torch sees a CUDA device, "mps" on Apple silicon, else "cpu";
- memory_gb: the accelerator's memory when there is one, else the machine's RAM;
- models: the model folders (with a config.json) under settings.MODEL_CACHE_DIR.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.utils.translation import gettext as _

if TYPE_CHECKING:
    import redis

CAPABILITIES_PREFIX = "medsyn:worker-caps"
ACCELERATORS = frozenset({"cuda", "mps"})


@dataclass(frozen=True)
class Requirements:
    """What a job's model needs of a worker: a device ("" any, "cuda": an NVIDIA GPU) and memory in GB on it (the
    accelerator's when the device is one, else RAM)."""

    device: str = ""
    memory_gb: float = 0.0

    def describe(self) -> str:
        parts = []
        if self.device:
            parts.append(self.device.upper())
        if self.memory_gb:
            parts.append(_("%(gb)s GB of memory") % {"gb": f"{self.memory_gb:g}"})
        return ", ".join(parts) or _("nothing special")


def _ram_gb() -> float:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError, AttributeError):
        return 0.0


def _accelerator() -> tuple[str, str, float]:
    """(device, accelerator name, its memory in GB) as torch sees them; ("cpu", "", 0) without one or without torch."""
    try:
        import torch
    except ImportError:
        return "cpu", "", 0.0
    if torch.cuda.is_available():
        properties = torch.cuda.get_device_properties(0)
        return "cuda", properties.name, round(properties.total_memory / 2**30, 1)
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps", "Apple MPS", _ram_gb()
    return "cpu", "", 0.0


def models_present() -> list[str]:
    """The model folders on this host: those under MODEL_CACHE_DIR holding a config.json (one level down too, for
    folders that keep several, such as adapters/)."""
    root = Path(settings.MODEL_CACHE_DIR)
    if not root.is_dir():
        return []
    found = [*root.glob("*/config.json"), *root.glob("*/*/config.json")]
    return sorted(str(path.parent.relative_to(root)) for path in found)


def capabilities_detect(hostname: str, queues: list[str]) -> dict[str, Any]:
    """This worker's capabilities, as advertised (settings override the detected device and memory). Only a worker of
    a local-model queue (gpu, gpu.cuda) looks for an accelerator: the others never load a model, nor torch."""
    local = not queues or any(queue.startswith("gpu") for queue in queues)
    device, accelerator, accelerator_gb = _accelerator() if local else ("cpu", "", 0.0)
    ram = _ram_gb()
    if settings.WORKER_DEVICE:
        device = settings.WORKER_DEVICE
        accelerator = accelerator if device in ACCELERATORS else ""
    memory = accelerator_gb if device in ACCELERATORS and accelerator_gb else ram
    if settings.WORKER_MEMORY_GB is not None:
        memory = float(settings.WORKER_MEMORY_GB)
    _local.clear()
    _local.update({"hostname": hostname, "queues": sorted(queues), "device": device, "accelerator": accelerator,
                   "memory_gb": memory, "ram_gb": ram, "cpus": os.cpu_count() or 1, "models": models_present(),
                   "pid": os.getpid()})
    return dict(_local)


_local: dict[str, Any] = {}  # this process's, as last detected (what its heartbeat advertises)


def capabilities_local() -> dict[str, Any]:
    """This process's capabilities: those its worker's heartbeat advertises, else detected now."""
    return _local or capabilities_detect("", [])


def capabilities_key(hostname: str) -> str:
    return f"{CAPABILITIES_PREFIX}:{hostname}"


def capabilities_write(client: redis.Redis, capabilities: dict[str, Any]) -> None:
    """Advertise for the heartbeat's time to live (a worker that stops beating drops out of the list)."""
    record = {**capabilities, "seen_at": time.time()}
    client.set(capabilities_key(capabilities["hostname"]), json.dumps(record),
               ex=settings.WORKER_HEARTBEAT_TTL_SECONDS)


def worker_capabilities_all(client: redis.Redis | None = None) -> list[dict[str, Any]]:
    """Every live worker's capabilities, by hostname ([] when no Redis holds heartbeats)."""
    if client is None:
        from medsyn_site.health import heartbeat_store_url, redis_client

        store = heartbeat_store_url()
        if store is None:
            return []
        client = redis_client(store)
    records = []
    for key in sorted(client.scan_iter(match=f"{CAPABILITIES_PREFIX}:*", count=200)):
        value = client.get(key)
        if value:
            records.append(json.loads(value))
    return sorted(records, key=lambda record: record["hostname"])


def requirements_unmet(requirements: Requirements, capabilities: dict[str, Any]) -> str | None:
    """Why a worker with these capabilities cannot run a job with these requirements; None when it can."""
    if requirements.device and capabilities.get("device") != requirements.device:
        return _("needs %(needed)s, the worker has %(device)s") % {
            "needed": requirements.device.upper(), "device": str(capabilities.get("device", "?")).upper()}
    if requirements.memory_gb and float(capabilities.get("memory_gb") or 0) < requirements.memory_gb:
        return _("needs %(needed)s GB of memory, the worker has %(memory)s GB") % {
            "needed": f"{requirements.memory_gb:g}", "memory": f"{float(capabilities.get('memory_gb') or 0):g}"}
    return None


def workers_able(requirements: Requirements, queue: str,
                 workers: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
    """The live workers of a queue that can run a job with these requirements."""
    workers = worker_capabilities_all() if workers is None else workers
    return [worker for worker in workers
            if queue in worker.get("queues", ()) and requirements_unmet(requirements, worker) is None]
