"""The real stack runner (`python -m medsyn_site.stack up`, what `make up` runs) keeps the stack up.

One runner for the module, in a subprocess with its own var directory and ports (--no-demo: no demo data, no model),
so these tests run beside the suite's services and beside a `make up`. A process killed with SIGKILL comes back
(new pid, heartbeat) while the rest stays up; the restarts are in var/run/supervisor.json and on the status page.
The web server runs with DEBUG off and static files served; Redis asks for the generated password.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import redis

from medsyn_site import stack
from medsyn_site.env import local_redis_password_file, secret_file_read
from medsyn_site.health import HEARTBEAT_PREFIX

pytestmark = pytest.mark.worker

# The suite's own service variables must not leak into the runner: it starts and configures its own.
SUITE_VARIABLES = (
    "DJANGO_SETTINGS_MODULE", "DATABASE_URL", "GRAPH_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND",
    "MEDSYN_VAR_DIR", "MEDSYN_MODEL_DIR", "MEDSYN_DEFAULT_MODEL", "MEDSYN_TEST_REDIS_PORT", "MEDSYN_REDIS_PORT",
    "MEDSYN_WEB_PORT", "DJANGO_DEBUG", "DJANGO_ALLOW_ASYNC_UNSAFE",
)
START_TIMEOUT = 180


def _runner_env() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key not in SUITE_VARIABLES}


def _runner_args(layout: stack.StackLayout, action: str) -> list[str]:
    return [sys.executable, "-m", "medsyn_site.stack", action, "--var", str(layout.var),
            "--port", str(layout.web_port), "--redis-port", str(layout.redis_port), "--no-demo"]


def _wait(predicate, timeout: float, what: str, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.2)
    tail = log.read_text()[-4000:] if log is not None and log.exists() else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")


class RunningStack:
    def __init__(self, layout: stack.StackLayout, proc: subprocess.Popen, output: Path) -> None:
        self.layout = layout
        self.proc = proc
        self.output = output

    def state(self) -> dict:
        return stack.supervisor_state_read(self.layout.var) or {}

    def process(self, name: str) -> dict:
        return self.state().get("processes", {}).get(name, {})

    @property
    def password(self) -> str:
        return secret_file_read(local_redis_password_file(self.layout.var))

    def redis(self, db: int = 1) -> redis.Redis:
        return redis.Redis(port=self.layout.redis_port, db=db, password=self.password, socket_timeout=2)

    def heartbeat_pid(self, queue: str) -> int | None:
        """The pid in a live heartbeat key of queue (workers write their pid), or None."""
        try:
            client = self.redis()
            for key in client.scan_iter(f"{HEARTBEAT_PREFIX}:{queue}:*"):
                value = client.get(key)
                if value:
                    return int(value)
        except redis.RedisError:
            return None
        return None

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"{self.layout.url.rstrip('/')}{path}", timeout=10) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def wait_running(self, name: str, *, restarts: int, timeout: float = 60) -> dict:
        def back() -> dict | None:
            process = self.process(name)
            return process if process.get("state") == "running" and process.get("restarts", 0) >= restarts else None

        return _wait(back, timeout, f"{name} running after restart {restarts}", self.output)


@pytest.fixture(scope="module")
def running_stack():
    # Not under pytest's tmp_path: pytest makes its base directory 0700 again at each session start (any parallel
    # run too), which locks PostgreSQL's own user (as root: embedded_postgres) out of its data directory.
    root = Path(tempfile.mkdtemp(prefix="medsyn-stack-test-"))
    layout = stack.StackLayout(var=root / "var", web_port=stack.free_port(), redis_port=stack.free_port())
    output = root / "runner.log"
    with output.open("wb") as sink:
        proc = subprocess.Popen(_runner_args(layout, "up"), env=_runner_env(), cwd=stack.BASE_DIR, stdout=sink,
                                stderr=subprocess.STDOUT, start_new_session=True)
    running = RunningStack(layout, proc, output)
    try:
        _wait(lambda: running.state().get("phase") == "running" or proc.poll() is not None, START_TIMEOUT,
              "the stack to start", output)
        assert proc.poll() is None, output.read_text()[-4000:]
        for queue in ("gpu", "default"):
            _wait(lambda q=queue: running.heartbeat_pid(q), 60, f"the {queue} worker's heartbeat", output)
        yield running
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=90)
        except subprocess.TimeoutExpired:
            stack.process_group_stop(proc.pid, timeout=5)
        stack.stack_down(layout)  # whatever a failed runner left: verified pid files only
        shutil.rmtree(root, ignore_errors=True)


def test_a_killed_worker_comes_back_while_the_rest_stays_up(running_stack, client, make_user, settings):
    layout = running_stack.layout
    before = running_stack.state()["processes"]
    gpu_pid = before["worker-gpu"]["pid"]
    postmaster = stack.postgres_pid(layout.postgres)
    assert running_stack.heartbeat_pid("gpu") == gpu_pid and postmaster is not None

    os.killpg(gpu_pid, signal.SIGKILL)

    gpu = running_stack.wait_running("worker-gpu", restarts=1)
    assert gpu["pid"] != gpu_pid and gpu["last_exit_code"] == -signal.SIGKILL
    assert gpu["last_exit"] == "was killed by SIGKILL" and gpu["last_restart_at"]
    _wait(lambda: running_stack.heartbeat_pid("gpu") == gpu["pid"], 60, "the new gpu worker's heartbeat",
          running_stack.output)
    after = running_stack.state()["processes"]
    for name in ("postgres", "falkordb", "worker-default", "web"):
        assert after[name]["restarts"] == 0 and after[name]["pid"] == before[name]["pid"], name
    assert stack.postgres_pid(layout.postgres) == postmaster
    assert running_stack.get("/healthz")[0] in (200, 503)  # the web server answers (no model: 503)
    assert running_stack.proc.poll() is None
    log = (layout.logs / "supervisor.log").read_text()
    assert f"worker-gpu (pid {gpu_pid}) was killed by SIGKILL" in log and "worker-gpu started again" in log

    # The status page of this stack shows the restart: the record to anyone who may see the page, pids to staff.
    settings.VAR_DIR = layout.var
    client.force_login(make_user("researcher"))
    page = client.get("/status/").content.decode()
    assert 'data-process="worker-gpu" data-restarts="1"' in page and 'data-process="web" data-restarts="0"' in page
    assert f'data-pid="{gpu["pid"]}"' not in page
    client.force_login(make_user("admin"))
    page = client.get("/status/").content.decode()
    assert f'data-pid="{gpu["pid"]}"' in page and "was killed by SIGKILL" in page


def test_the_web_server_runs_without_debug(running_stack):
    status, body = running_stack.get("/no/such/page/")
    assert status == 404 and 'data-status="404"' in body
    assert "URLconf" not in body and "Django tried these URL patterns" not in body
    status, css = running_stack.get("/static/css/medsyn.css")
    assert status == 200 and ".topbar" in css
    status, body = running_stack.get("/healthz")
    assert all(set(component) == {"name", "ok"} for component in json.loads(body)["components"])
    assert "127.0.0.1" not in body and running_stack.password not in body


def test_redis_asks_for_the_generated_password(running_stack):
    layout = running_stack.layout
    password_file = local_redis_password_file(layout.var)
    assert password_file.stat().st_mode & 0o777 == 0o600 and len(running_stack.password) >= 32
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=layout.redis_port, socket_timeout=2).ping()
    assert running_stack.redis().ping() is True
    assert running_stack.heartbeat_pid("default")  # the workers reach the broker with it
    falkordb_pid = running_stack.process("falkordb")["pid"]
    cmdline = Path(f"/proc/{falkordb_pid}/cmdline").read_bytes().decode(errors="replace")
    assert running_stack.password not in cmdline  # it is in a 0600 config file, not in `ps`


def test_falkordb_comes_back_and_up_again_starts_what_is_down(running_stack):
    """While FalkorDB cannot start (its port is taken), `up` does not answer "already running": it has the runner
    start it now and prints the URL once everything is up again."""
    layout = running_stack.layout
    falkordb_pid = running_stack.process("falkordb")["pid"]
    os.killpg(falkordb_pid, signal.SIGKILL)
    _wait(lambda: not stack.port_open(layout.redis_port), 10, "FalkorDB's port to close")
    squatter = socket.socket()
    squatter.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    squatter.bind(("127.0.0.1", layout.redis_port))
    squatter.listen()
    try:
        _wait(lambda: "already in use" in running_stack.process("falkordb").get("last_error", ""), 30,
              "a failed restart of FalkorDB", running_stack.output)
        again = subprocess.Popen(_runner_args(layout, "up"), env=_runner_env(), cwd=stack.BASE_DIR,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        first_line = again.stdout.readline()
        assert "falkordb is down: starting it again" in first_line, first_line
    finally:
        squatter.close()
    output, _ = again.communicate(timeout=60)
    assert again.returncode == 0, output
    assert "every process is up again" in output and layout.url in output

    falkordb = running_stack.wait_running("falkordb", restarts=1)
    assert falkordb["pid"] != falkordb_pid and "snapshot" in falkordb["note"]
    assert running_stack.redis().ping() is True
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=layout.redis_port, socket_timeout=2).ping()
    _wait(lambda: running_stack.heartbeat_pid("gpu") and running_stack.heartbeat_pid("default"), 30,
          "the workers' heartbeats in the new FalkorDB", running_stack.output)

    everything_up = subprocess.run(_runner_args(layout, "up"), env=_runner_env(), cwd=stack.BASE_DIR,
                                   capture_output=True, text=True, timeout=60)
    assert everything_up.returncode == 0
    assert "already running" in everything_up.stdout and "every process is up" in everything_up.stdout
    assert layout.url in everything_up.stdout


def test_a_killed_postgresql_is_started_again(running_stack):
    layout = running_stack.layout
    postmaster = stack.postgres_pid(layout.postgres)
    os.kill(postmaster, signal.SIGKILL)

    postgres = running_stack.wait_running("postgres", restarts=1, timeout=90)
    assert postgres["pid"] != postmaster and stack.postgres_pid(layout.postgres) == postgres["pid"]
    assert "write-ahead log" in postgres["note"]

    def database_up() -> bool:
        status, body = running_stack.get("/healthz")
        return {c["name"]: c["ok"] for c in json.loads(body)["components"]}.get("database") is True

    _wait(database_up, 30, "the web server to reach the restarted database", running_stack.output)
    assert running_stack.process("web")["restarts"] == 0


def test_beat_runs_once_beside_the_web_server_and_sends_the_sweep(running_stack):
    """`up` (role all) runs one Celery beat, supervised like the rest, with its schedule in var/run; the sweep it
    sends is taken by the default worker."""
    layout = running_stack.layout
    beat = running_stack.process("beat")
    assert beat["state"] == "running" and beat["pid"]
    assert running_stack.state()["role"] == "all"
    _wait(lambda: "core.sweep" in (layout.logs / "beat.log").read_text(), 90, "beat to send the sweep",
          running_stack.output)
    _wait(lambda: '"task": "core.sweep"' in (layout.logs / "worker-default.log").read_text(), 90,
          "the default worker to run the sweep", running_stack.output)
    assert list(layout.run.glob("celerybeat-schedule*"))
    beats = [line for line in Path(f"/proc/{beat['pid']}/cmdline").read_bytes().split(b"\0") if line]
    assert b"beat" in beats and f"--schedule={layout.beat_schedule}".encode() in beats
