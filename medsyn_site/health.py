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
    """Both embedded default models are prepared (config and safetensors in their folders); the detail names each.

    On a web host of several (docs/deploy.md) the models are on the gpu workers' disks, not here: a model missing
    here counts as prepared when a live gpu worker advertises its folder (core.workers)."""

    def run() -> str:
        found, missing, elsewhere = [], [], []
        for language, model_dir in model_dirs_default():
            ready = (model_dir / "config.json").is_file() and any(model_dir.glob("*.safetensors"))
            named = _("%(language)s: %(dir)s") % {"language": language, "dir": model_dir}
            if ready:
                found.append(named)
            elif hosts := gpu_workers_with_model(model_dir.name):
                elsewhere.append(_("%(language)s: %(model)s on %(hosts)s") % {
                    "language": language, "model": model_dir.name, "hosts": ", ".join(hosts)})
            else:
                missing.append(named)
        if missing:
            raise FileNotFoundError(_("default model not prepared (run make up): %(missing)s; prepared: %(found)s") % {
                "missing": "; ".join(missing), "found": "; ".join(found + elsewhere) or _("none")})
        return "; ".join(found + elsewhere)

    return _timed("model_cache", _("Model cache"), run)


def worker_fleet() -> list[dict] | None:
    """Every live worker and what it can run (core.workers), for the status page; None when nothing can be said
    (no Redis holds heartbeats, or Redis is down)."""
    from medsyn_site.core.workers import worker_capabilities_all

    try:
        workers = worker_capabilities_all()
    except (redis.RedisError, OSError, ValueError):
        return None
    now = time.time()
    return [{**worker, "seen_s": round(max(now - float(worker.get("seen_at") or now), 0), 1)} for worker in workers]


def gpu_workers_with_model(folder: str) -> list[str]:
    """The live gpu workers that advertise the model folder (core.workers); [] when none can be asked."""
    return sorted(worker["hostname"] for worker in worker_fleet() or []
                  if folder in worker.get("models", ()) and {"gpu", "gpu.cuda"} & set(worker.get("queues", ())))


def all_components() -> list[ComponentStatus]:
    checks = [check_database(), check_graph(), check_broker()]
    checks += [check_worker_queue(queue) for queue in settings.WORKER_QUEUES]
    checks.append(check_model_cache())
    return checks


# --- One host's checks (`python -m medsyn_site.stack health`): what this host's role needs -------------------------

def host_components(*, workers: dict[str, list[str]], web_url: str | None, services_only: bool = False,
                    starting: bool = False) -> list[ComponentStatus]:
    """The checks of one host: the database, graph, broker and storage it uses; then, for its web server, that it
    answers and that the stack runner's processes run; for its workers (Celery name -> queues), that each consumes its
    queues and that the gpu queues' model files are on this host. services_only: the services alone; starting:
    the services, and that no live worker already has this host's worker names (two hosts with one name would
    share heartbeats and the ownership of running work)."""
    checks = [check_database(), check_graph(), check_broker(), check_storage()]
    if starting:
        return [*checks, check_worker_names_free(list(workers))]
    if services_only:
        return checks
    if web_url is not None:
        checks.append(check_web(web_url))
    if (processes := check_supervised_processes()) is not None:
        checks.append(processes)
    checks += [check_host_worker(name, queues) for name, queues in workers.items()]
    gpu_queues = sorted({queue for queues in workers.values() for queue in queues} & {"gpu", "gpu.cuda"})
    if gpu_queues:
        checks.append(check_local_models(gpu_queues))
    return checks


def check_storage() -> ComponentStatus:
    """The storage of releases and adapters answers (MEDSYN_STORAGE_URL, core.storage); the detail says where."""
    from medsyn_site.core.storage import adapters_storage, releases_storage, storage_check

    def run() -> str:
        return "; ".join(storage_check(storage) for storage in (releases_storage(), adapters_storage()))

    return _timed("storage", _("Shared storage"), run)


def _live_worker_queues(name: str) -> list[str]:
    store = heartbeat_store_url()
    if store is None:
        raise RuntimeError(
            _("cannot tell: worker heartbeats need Redis as the broker or the result backend (broker is %(s)s://)")
            % {"s": url_scheme(settings.CELERY_BROKER_URL)})
    keys = redis_client(store).scan_iter(f"{HEARTBEAT_PREFIX}:*:{name}", count=100)
    return sorted(key.decode()[len(HEARTBEAT_PREFIX) + 1:].rsplit(":", 1)[0] for key in keys)


def check_host_worker(name: str, queues: list[str]) -> ComponentStatus:
    """This host's worker `name` is alive and consumes each of queues (its heartbeats)."""

    def run() -> str:
        live = _live_worker_queues(name)
        missing = [queue for queue in queues if queue not in live]
        if missing:
            raise RuntimeError(_("no heartbeat for queue(s) %(queues)s: the worker is not running or cannot reach "
                                 "the broker") % {"queues": ", ".join(missing)})
        return _("consumes %(queues)s") % {"queues": ", ".join(queues)}

    return _timed(f"worker:{name}", _("Worker %(name)s") % {"name": name}, run)


def check_worker_names_free(names: list[str]) -> ComponentStatus:
    """No live worker has one of names: a second host with the same name must not start (see host_components)."""

    def run() -> str:
        taken = [name for name in names if _live_worker_queues(name)]
        if taken:
            raise RuntimeError(_("a live worker already has the name %(names)s: another host uses this name (give "
                                 "this one its own: --name), or this host's previous workers stopped less than "
                                 "%(ttl)s s ago (start again in a moment)")
                               % {"names": ", ".join(taken), "ttl": settings.WORKER_HEARTBEAT_TTL_SECONDS})
        return _("free: %(names)s") % {"names": ", ".join(names)}

    return _timed("worker_names", _("Worker names"), run)


def _site_host() -> str:
    """A host name the site answers to (the first of ALLOWED_HOSTS), for a request made on this machine."""
    for host in settings.ALLOWED_HOSTS:
        host = host.lstrip(".")
        if host and host != "*":
            return host
    return "localhost"


def check_web(url: str) -> ComponentStatus:
    """The web server on this host answers /healthz (200 or 503: it answers either way; the components it reports
    have their own rows)."""
    import json
    import urllib.error
    import urllib.request

    def run() -> str:
        request = urllib.request.Request(url.rstrip("/") + "/healthz", headers={"Host": _site_host()})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status, body = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, body = error.code, error.read()
        if status not in (200, 503):
            raise RuntimeError(_("/healthz answered HTTP %(status)s") % {"status": status})
        overall = json.loads(body).get("status", "?")
        return _("%(url)s answers (%(status)s)") % {"url": url, "status": overall}

    return _timed("web", _("Web server"), run)


def check_supervised_processes() -> ComponentStatus | None:
    """The stack runner's processes all run (None when no stack runner uses this var directory: systemd hosts)."""
    report = supervisor_report()
    if report is None:
        return None

    def run() -> str:
        if report.stale:
            raise RuntimeError(_("the stack runner has not reported for %(s)s s: it may have stopped")
                               % {"s": SUPERVISOR_STALE_SECONDS})
        down = [process.name for process in report.processes if not process.running]
        if down:
            raise RuntimeError(_("restarting: %(names)s") % {"names": ", ".join(down)})
        return ", ".join(process.name for process in report.processes)

    return _timed("processes", _("Processes"), run)


def model_files_present(path: Path, gguf_file: str = "") -> bool:
    """A local model's folder holds what the loader reads: its config.json, or the named GGUF file."""
    return path.is_dir() and ((path / gguf_file).is_file() if gguf_file else (path / "config.json").is_file())


def check_local_models(queues: list[str]) -> ComponentStatus:
    """The files of every local model configuration whose chunks this host's gpu workers may take are on its disk:
    models needing CUDA for gpu.cuda, the others for gpu, leaving out models whose memory this host lacks (their
    chunks never come here: core.workers). LoRA adapters are not checked: a worker fetches them from the shared
    storage when it first needs them."""
    from generation.backends.local_backend import model_location
    from generation.jobs import requirements_for
    from generation.models import ModelConfig
    from medsyn_site.core.workers import capabilities_local, requirements_unmet

    def run() -> str:
        capabilities = capabilities_local()
        present, missing = [], []
        for config in ModelConfig.objects.filter(backend=ModelConfig.Backend.LOCAL).order_by("name"):
            queue = "gpu.cuda" if config.device == ModelConfig.Device.CUDA else "gpu"
            requirements = requirements_for(config)
            if queue not in queues or (requirements and requirements_unmet(requirements, capabilities)):
                continue
            location = model_location(config.model_path)
            (present if model_files_present(location, config.gguf_file) else missing).append((config.name, location))
        if missing:
            raise FileNotFoundError(_("model files missing on this host: %(missing)s (prepare or copy them into "
                                      "MEDSYN_MODEL_DIR)") % {
                "missing": "; ".join(f"{name} ({location})" for name, location in missing)})
        if not present:
            return _("no local model configuration for %(queues)s") % {"queues": ", ".join(queues)}
        return "; ".join(f"{name} ({location})" for name, location in present)

    return _timed("models", _("Model files"), run)


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
