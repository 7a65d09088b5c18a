"""`stack down` / `stack up` must never signal a pid whose pid file is stale (crash, reboot, pid reuse).

Real processes throughout: an unrelated `sleep` in its own process group stands for whatever reused the pid,
and a process started the way the stack starts its children stands for a genuine stack process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from medsyn_site import stack


@pytest.fixture
def layout(tmp_path: Path) -> stack.StackLayout:
    layout = stack.StackLayout(var=tmp_path / "var")
    layout.run.mkdir(parents=True)
    return layout


@pytest.fixture
def spawn():
    """Start processes in their own process group (as the stack does); stop the ones still running at the end."""
    procs: list[subprocess.Popen] = []

    def start(*cmd: str) -> subprocess.Popen:
        proc = subprocess.Popen(list(cmd or ("sleep", "60")), start_new_session=True)
        procs.append(proc)
        # Between fork and exec /proc/<pid>/cmdline is still empty (seen on a busy machine): wait for the exec.
        cmdline = Path(f"/proc/{proc.pid}/cmdline")
        for _attempt in range(200):
            if cmdline.read_bytes():
                break
            time.sleep(0.01)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            stack.process_group_stop(proc.pid, timeout=5)
        proc.wait()


def _alive(proc: subprocess.Popen) -> bool:
    return proc.poll() is None


def _rewrite(path: Path, **changes: object) -> None:
    """Edit a pid file as if it had been written for another process that once had the same pid."""
    record = json.loads(path.read_text())
    record.update(changes)
    path.write_text(json.dumps(record))


def test_pidfile_records_the_process_identity(layout, spawn):
    proc = spawn()
    path = layout.pidfile("web")
    stack.pidfile_write(path, proc.pid)
    record = json.loads(path.read_text())
    live = stack.process_identity(proc.pid)
    assert record["pid"] == proc.pid and live is not None and live.cmdline == "sleep 60"
    assert (record["boot_id"], record["start_ticks"]) == (live.boot_id, live.start_ticks) and live.boot_id
    assert stack.pidfile_pid(path) == proc.pid and path.exists()


def test_down_spares_a_process_that_reused_the_pid(layout, spawn, capsys):
    unrelated = spawn()
    path = layout.pidfile("worker-gpu")
    stack.pidfile_write(path, unrelated.pid)
    recorded = json.loads(path.read_text())["start_ticks"]
    _rewrite(path, start_ticks=recorded - 100, cmdline="python -m celery -A medsyn_site worker -Q gpu")

    assert stack.stack_down(layout) == 0

    assert _alive(unrelated)
    assert not path.exists()
    out = capsys.readouterr().out
    assert "stale pid file worker-gpu.pid" in out and "different process 'sleep 60'" in out
    assert "signalled nothing" in out


def test_down_spares_a_process_named_by_a_pid_file_from_before_a_reboot(layout, spawn, capsys):
    unrelated = spawn()
    path = layout.pidfile("falkordb")
    stack.pidfile_write(path, unrelated.pid)
    _rewrite(path, boot_id="00000000-0000-0000-0000-000000000000")

    stack.stack_down(layout)

    assert _alive(unrelated)
    assert not path.exists()
    assert "before the last reboot" in capsys.readouterr().out


def test_down_spares_a_process_named_by_a_bare_pid_file(layout, spawn, capsys):
    """A pid file with only a number (older format) cannot be verified, so it is not trusted."""
    unrelated = spawn()
    path = layout.pidfile("web")
    path.write_text(str(unrelated.pid))

    stack.stack_down(layout)

    assert _alive(unrelated)
    assert not path.exists()
    out = capsys.readouterr().out
    assert "stale pid file web.pid" in out and f"kill -TERM -- -{unrelated.pid}" in out


def test_down_removes_the_pid_file_of_a_process_that_is_gone(layout, spawn, capsys):
    gone = spawn()
    path = layout.pidfile("worker-default")
    stack.pidfile_write(path, gone.pid)
    stack.process_group_stop(gone.pid, timeout=5)
    gone.wait()

    assert stack.stack_down(layout) == 0

    assert not path.exists()
    assert f"process {gone.pid} is gone" in capsys.readouterr().out


def test_down_removes_an_unreadable_pid_file(layout, capsys):
    path = layout.pidfile("web")
    path.write_text("not a pid\n")

    assert stack.stack_down(layout) == 0

    assert not path.exists()
    assert "unreadable contents 'not a pid'" in capsys.readouterr().out


def test_down_stops_genuine_stack_processes_and_spares_the_stale_one(layout, spawn):
    genuine = stack.ManagedProcess("web", ["sleep", "60"], dict(os.environ), layout.logs / "web.log")
    genuine.start()
    stack.pidfile_write(layout.pidfile("web"), genuine.proc.pid)
    unrelated = spawn()
    stale = layout.pidfile("worker-gpu")
    stack.pidfile_write(stale, unrelated.pid)
    _rewrite(stale, start_ticks=json.loads(stale.read_text())["start_ticks"] - 100)
    try:
        stack.stack_down(layout)

        assert genuine.proc.poll() is not None  # process_group_stop reaped it
        assert _alive(unrelated)
        assert list(layout.run.glob("*.pid")) == []
    finally:
        genuine.stop(timeout=5)


def test_down_terminates_a_verified_supervisor(layout, spawn, capsys):
    supervisor = spawn(sys.executable, "-c", "import time; time.sleep(60)")
    stack.pidfile_write(layout.pidfile("stack"), supervisor.pid)

    assert stack.stack_down(layout) == 0

    assert supervisor.wait() == -signal.SIGTERM
    assert "MedSyn Studio stopped." in capsys.readouterr().out


def test_down_does_not_signal_a_stale_supervisor_and_stops_the_children(layout, spawn, capsys):
    unrelated = spawn()
    supervisor_file = layout.pidfile("stack")
    stack.pidfile_write(supervisor_file, unrelated.pid)
    _rewrite(supervisor_file, start_ticks=json.loads(supervisor_file.read_text())["start_ticks"] - 100)
    child = spawn()
    stack.pidfile_write(layout.pidfile("web"), child.pid)

    stack.stack_down(layout)

    assert _alive(unrelated)
    assert child.poll() is not None  # process_group_stop reaped it
    out = capsys.readouterr().out
    assert "stale pid file stack.pid" in out and "MedSyn Studio stopped." in out


def test_up_reports_a_verified_supervisor_as_already_running(layout, spawn, capsys):
    supervisor = spawn()
    stack.pidfile_write(layout.pidfile("stack"), supervisor.pid)

    assert stack.stack_up(layout) == 0

    assert f"already running (pid {supervisor.pid})" in capsys.readouterr().out
    assert _alive(supervisor)


class _StartReached(Exception):
    pass


def test_up_ignores_a_stale_supervisor_pid_file(layout, spawn, capsys, monkeypatch):
    """A stale stack.pid must not make `up` claim the stack runs; `up` takes the pid file over and starts."""
    unrelated = spawn()
    supervisor_file = layout.pidfile("stack")
    stack.pidfile_write(supervisor_file, unrelated.pid)
    _rewrite(supervisor_file, start_ticks=json.loads(supervisor_file.read_text())["start_ticks"] - 100)

    def reached(_layout: stack.StackLayout, _role: str = "all") -> dict[str, str]:
        raise _StartReached  # stop before any service is started: we only test the pid file check

    monkeypatch.setattr(stack, "stack_env", reached)
    with pytest.raises(_StartReached):
        stack.stack_up(layout)

    out = capsys.readouterr().out
    assert "already running" not in out and "stale pid file stack.pid" in out
    assert _alive(unrelated)
    assert stack.pidfile_pid(supervisor_file) == os.getpid()
