"""The supervisor's back-off, on real processes (`sleep`) in-process: 1, 2, 4 … 60 s, reset once a process stays up."""

from __future__ import annotations

import os
import signal
import time

import pytest

from medsyn_site import stack


def test_backoff_doubles_up_to_a_minute():
    assert [stack.backoff_seconds(n) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]


@pytest.fixture
def supervised(tmp_path):
    layout = stack.StackLayout(var=tmp_path / "var")
    layout.run.mkdir(parents=True)
    layout.logs.mkdir(parents=True)
    sleeper = stack.ManagedProcess("sleeper", ["sleep", "60"], dict(os.environ), layout.logs / "sleeper.log")
    sleeper.start()
    supervisor = stack.Supervisor(layout, [sleeper], demo=False, backoff=(30, 60))
    yield supervisor, sleeper
    sleeper.stop(timeout=5)


def kill_and_notice(supervisor: stack.Supervisor, process: stack.ManagedProcess) -> dict:
    os.killpg(process.pid, signal.SIGKILL)
    process.proc.wait()
    supervisor.poll()
    return stack.supervisor_state_read(supervisor.layout.var)["processes"][process.name]


def test_a_dead_process_waits_for_its_backoff_and_up_again_starts_it_at_once(supervised):
    supervisor, sleeper = supervised
    first = sleeper.pid
    record = kill_and_notice(supervisor, sleeper)
    assert record["state"] == "restarting" and record["pid"] is None and record["restarts"] == 0
    assert record["last_exit"] == "was killed by SIGKILL" and 29 <= record["next_attempt_in_s"] <= 30

    supervisor.poll()  # the back-off is not over: still down
    assert sleeper.exited() is not None

    supervisor.restart_requested = True  # what SIGUSR1 from `make up` sets
    supervisor.poll()
    record = stack.supervisor_state_read(supervisor.layout.var)["processes"]["sleeper"]
    assert record["state"] == "running" and record["restarts"] == 1 and record["pid"] == sleeper.pid != first
    assert stack.pidfile_pid(supervisor.layout.pidfile("sleeper")) == sleeper.pid

    record = kill_and_notice(supervisor, sleeper)  # again at once: the back-off doubles
    assert 59 <= record["next_attempt_in_s"] <= 60


def test_the_backoff_resets_once_the_process_stayed_up(supervised, monkeypatch):
    supervisor, sleeper = supervised
    kill_and_notice(supervisor, sleeper)
    supervisor.restart_requested = True
    supervisor.poll()
    assert supervisor.records["sleeper"].failures == 1

    monkeypatch.setattr(stack, "STABLE_SECONDS", 0.1)
    time.sleep(0.2)
    supervisor.poll()
    assert supervisor.records["sleeper"].failures == 0
    record = kill_and_notice(supervisor, sleeper)
    assert 29 <= record["next_attempt_in_s"] <= 30
    assert "sleeper (pid" in (supervisor.layout.logs / "supervisor.log").read_text()
