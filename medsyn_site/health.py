"""Component checks behind /healthz, the status page and the banner on every page."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import redis
from django.conf import settings
from django.db import connections
from django.utils.translation import gettext as _

HEARTBEAT_PREFIX = "medsyn:worker-heartbeat"
REDIS_SCHEMES = frozenset({"redis", "rediss"})
BROKER_TIMEOUT_SECONDS = 2


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    label: str
    ok: bool
    latency_ms: float | None
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)

    def as_public_dict(self) -> dict:
        """What anyone may see: up or down, no hosts, URLs, paths or error texts."""
        return {"name": self.name, "ok": self.ok}


def heartbeat_key(queue: str, hostname: str) -> str:
    return f"{HEARTBEAT_PREFIX}:{queue}:{hostname}"


@lru_cache(maxsize=8)
def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)


def url_scheme(url: str) -> str:
    return urlsplit(url).scheme.lower()


def heartbeat_store_url() -> str | None:
    """The Redis that holds worker heartbeats: the broker if it is Redis, else a Redis result backend, else None.

    Heartbeats are plain expiring keys, which an AMQP broker cannot hold; with AMQP the result backend is
    Redis in any working setup (Celery 5 has no AMQP result backend), so workers and checks agree on it.
    """
    for url in (settings.CELERY_BROKER_URL, getattr(settings, "CELERY_RESULT_BACKEND", None) or ""):
        if url_scheme(url) in REDIS_SCHEMES:
            return url
    return None


def _timed(name: str, label: str, check: Callable[[], str]) -> ComponentStatus:
    started = time.perf_counter()
    try:
        detail = check()
        ok = True
    except Exception as error:  # every failure becomes a red row with the reason, never a 500
        detail = f"{type(error).__name__}: {error}".strip()
        ok = False
    latency = round((time.perf_counter() - started) * 1000, 2)
    return ComponentStatus(name, label, ok, latency if ok else None, detail)


def check_database() -> ComponentStatus:
    def run() -> str:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT version()")
            version = cursor.fetchone()[0]
        return version.split(" on ")[0]

    return _timed("database", _("Database (PostgreSQL)"), run)


def check_graph() -> ComponentStatus:
    from graph.store import get_graph_store

    def run() -> str:
        get_graph_store().ping()
        return settings.GRAPH.display

    return _timed("graph", _("Graph database"), run)


def _kombu_connect(url: str) -> None:
    """Open and close one broker connection through Celery's own settings (SSL, transport options)."""
    from medsyn_site.celery import app

    with app.connection_for_write(url, connect_timeout=BROKER_TIMEOUT_SECONDS) as connection:
        connection.ensure_connection(
            max_retries=1, interval_start=0, interval_step=0, timeout=BROKER_TIMEOUT_SECONDS
        )


def check_broker() -> ComponentStatus:
    """Any Celery broker: Redis answers PING; other transports (AMQP, ...) must accept a kombu connection."""
    from kombu.transport import TRANSPORT_ALIASES

    url = settings.CELERY_BROKER_URL
    scheme = url_scheme(url)
    kind = {"redis": "Redis", "rediss": "Redis", "amqp": "AMQP", "amqps": "AMQP", "pyamqp": "AMQP"}.get(scheme)

    def run() -> str:
        if scheme in REDIS_SCHEMES:
            redis_client(url).ping()
        elif scheme in TRANSPORT_ALIASES:
            _kombu_connect(url)
        else:
            raise ValueError(
                _("unsupported broker scheme %(scheme)r: use redis://, rediss://, amqp://, amqps:// or pyamqp://")
                % {"scheme": f"{scheme}://" if scheme else ""}
            )
        return _("Celery broker answers")

    label = _("Broker (%(kind)s)") % {"kind": kind} if kind else _("Broker")
    return _timed("broker", label, run)


def check_worker_queue(queue: str) -> ComponentStatus:
    def run() -> str:
        store = heartbeat_store_url()
        if store is None:
            raise RuntimeError(
                _("cannot tell: worker heartbeats need Redis as the broker or the result backend (broker is %(s)s://)")
                % {"s": url_scheme(settings.CELERY_BROKER_URL)}
            )
        keys = list(redis_client(store).scan_iter(f"{HEARTBEAT_PREFIX}:{queue}:*", count=100))
        if not keys:
            raise RuntimeError(_("no worker is consuming this queue"))
        hosts = sorted(k.decode().rsplit(":", 1)[-1] for k in keys)
        return ", ".join(hosts)

    return _timed(f"worker:{queue}", _("Worker queue “%(queue)s”") % {"queue": queue}, run)


def model_dirs_default() -> list[tuple[str, Path]]:
    """The embedded default models `make up` prepares, by the language they are the default for, and their folders."""
    return [(_("English"), settings.DEFAULT_MODEL_DIR), (_("Russian"), settings.DEFAULT_MODEL_RU_DIR)]


def check_model_cache() -> ComponentStatus:
    """Both embedded default models are prepared (config and safetensors in their folders); the detail names each."""

    def run() -> str:
        found, missing = [], []
        for language, model_dir in model_dirs_default():
            ready = (model_dir / "config.json").is_file() and any(model_dir.glob("*.safetensors"))
            (found if ready else missing).append(_("%(language)s: %(dir)s") % {"language": language, "dir": model_dir})
        if missing:
            raise FileNotFoundError(_("default model not prepared (run make up): %(missing)s; prepared: %(found)s") % {
                "missing": "; ".join(missing), "found": "; ".join(found) or _("none")})
        return "; ".join(found)

    return _timed("model_cache", _("Model cache"), run)


def all_components() -> list[ComponentStatus]:
    checks = [check_database(), check_graph(), check_broker()]
    checks += [check_worker_queue(queue) for queue in settings.WORKER_QUEUES]
    checks.append(check_model_cache())
    return checks


_cache_lock = threading.Lock()
_cached: tuple[float, list[ComponentStatus]] | None = None


def cached_components() -> list[ComponentStatus]:
    """all_components(), reused for HEALTH_CACHE_SECONDS so the banner costs nothing per page."""
    global _cached
    now = time.monotonic()
    with _cache_lock:
        if _cached is not None and now - _cached[0] < settings.HEALTH_CACHE_SECONDS:
            return _cached[1]
    components = all_components()
    with _cache_lock:
        _cached = (time.monotonic(), components)
    return components


# --- The stack runner's processes (medsyn_site.stack writes var/run/supervisor.json) -------------------------------

SUPERVISOR_STALE_SECONDS = 30  # it rewrites the file every few seconds while it runs


@dataclass(frozen=True)
class SupervisedProcess:
    name: str
    running: bool
    restarts: int
    pid: int | None
    last_exit: str
    last_exit_at: str | None
    last_restart_at: str | None
    next_attempt_in_s: float | None
    last_error: str
    note: str


@dataclass(frozen=True)
class SupervisorReport:
    processes: list[SupervisedProcess]
    stale: bool  # no word from the runner for SUPERVISOR_STALE_SECONDS: it may have stopped

    @property
    def restarts(self) -> int:
        return sum(process.restarts for process in self.processes)


def supervisor_report() -> SupervisorReport | None:
    """The processes `make up` supervises and their restarts; None when no stack runner uses this var directory."""
    from medsyn_site.stack import supervisor_state_read

    state = supervisor_state_read(settings.VAR_DIR)
    if state is None:
        return None
    processes = [
        SupervisedProcess(
            name=name,
            running=entry.get("state") == "running",
            restarts=int(entry.get("restarts") or 0),
            pid=entry.get("pid"),
            last_exit=entry.get("last_exit") or "",
            last_exit_at=entry.get("last_exit_at"),
            last_restart_at=entry.get("last_restart_at"),
            next_attempt_in_s=entry.get("next_attempt_in_s"),
            last_error=entry.get("last_error") or "",
            note=entry.get("note") or "",
        )
        for name, entry in state["processes"].items()
    ]
    age = time.time() - float(state.get("updated_unix") or 0)
    return SupervisorReport(processes=processes, stale=age > SUPERVISOR_STALE_SECONDS)
