"""The stack runner's roles (python -m medsyn_site.stack up --role all|web|worker) and the per-host health command.

A worker host runs only Celery workers, against the services DATABASE_URL, GRAPH_URL and CELERY_BROKER_URL name: it
refuses to start without them or when one does not answer, and a worker host with its own var directory consumes a
queue of the suite's broker (the real test at the end, marked worker). The embedded services of a web host can be
opened to other hosts (MEDSYN_LISTEN_ADDRESS), behind passwords.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
import redis
from django.template.loader import render_to_string

from medsyn_site import stack

# Variables of the suite that a host of its own must not inherit (it has its own var directory and model folder).
HOST_VARIABLES = ("MEDSYN_VAR_DIR", "MEDSYN_MODEL_DIR", "MEDSYN_DEFAULT_MODEL", "MEDSYN_TEST_REDIS_PORT",
                  "MEDSYN_REDIS_PORT", "MEDSYN_WEB_PORT", "MEDSYN_LISTEN_ADDRESS", "MEDSYN_WEB_ADDRESS")
SERVICES = ("DATABASE_URL", "GRAPH_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND")


def _host_env(**changes: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in HOST_VARIABLES}
    env.update(DJANGO_SETTINGS_MODULE="medsyn_site.settings.test", PYTHONUNBUFFERED="1")
    env.update(changes)
    return env


def _stack(*args: str, env: dict[str, str], timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medsyn_site.stack", *args], env=env, cwd=stack.BASE_DIR,
                          capture_output=True, text=True, timeout=timeout)


def _loopback_alias() -> str:
    """An address of the loopback network other than 127.0.0.1 (Linux answers on all of 127/8): stands for this
    host's address on the network the worker hosts use."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


# --- What each role runs ------------------------------------------------------------------------------------------

def _processes(plan: stack.RolePlan, *, cuda: bool = False) -> dict[str, tuple]:
    return {spec.process: (spec.queues, spec.pool, spec.concurrency, dict(spec.env))
            for spec in stack.worker_specs(plan, cuda=cuda)}


def test_all_runs_the_workers_make_up_always_ran():
    assert _processes(stack.RolePlan()) == {"worker-gpu": (("gpu",), "solo", 1, {}),
                                            "worker-default": (("default", "api"), "threads", 4, {})}
    assert _processes(stack.RolePlan(), cuda=True)["worker-gpu"][0] == ("gpu", "gpu.cuda")


def test_a_web_host_runs_no_worker_unless_asked():
    assert _processes(stack.RolePlan(role="web", queues=())) == {}
    assert _processes(stack.RolePlan(role="web", queues=("default",))) == {
        "worker-default": (("default",), "threads", 4, {})}


def test_a_worker_host_runs_one_process_per_kind_of_queue_and_one_per_gpu():
    plan = stack.RolePlan(role="worker", queues=("gpu", "api"), api_threads=16)
    assert _processes(plan) == {"worker-gpu": (("gpu",), "solo", 1, {}), "worker-api": (("api",), "threads", 16, {})}
    two_gpus = _processes(stack.RolePlan(role="worker", queues=("gpu",), gpu_workers=2), cuda=True)
    assert two_gpus == {"worker-gpu0": (("gpu", "gpu.cuda"), "solo", 1, {"CUDA_VISIBLE_DEVICES": "0"}),
                        "worker-gpu1": (("gpu", "gpu.cuda"), "solo", 1, {"CUDA_VISIBLE_DEVICES": "1"})}
    only_cuda = stack.worker_specs(stack.RolePlan(role="worker", queues=("gpu.cuda",)), cuda=False)
    assert [(spec.process, spec.queues) for spec in only_cuda] == [("worker-gpu", ("gpu.cuda",))]
    names = stack.host_worker_names(stack.RolePlan(role="worker", queues=("gpu", "default"), name="hostb"), cuda=False)
    assert names == {"gpu@hostb": ["gpu"], "default@hostb": ["default"]}
    command = stack.WorkerSpec("worker-api", ("api",), "api", "threads", 8).command("hostb")
    assert command[command.index("-Q"):command.index("-Q") + 6] == [
        "-Q", "api", "-n", "api@hostb", "--pool=threads", "--concurrency=8"]


def test_gpu_cuda_follows_the_device_setting():
    assert stack.cuda_present({"MEDSYN_WORKER_DEVICE": "cuda"}) is True
    assert stack.cuda_present({"MEDSYN_WORKER_DEVICE": "cpu"}) is False


@pytest.mark.parametrize("argv", [
    ["up", "--role", "all", "--queues", "gpu"],  # all runs what make up runs
    ["up", "--role", "worker", "--queues", "gpu,tpu"],
    ["up", "--role", "worker", "--gpu-workers", "0"],
    ["manage"],  # a command after --
    ["up", "--", "migrate"],
])
def test_the_command_line_refuses_what_makes_no_sense(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        stack.main(argv)
    assert exit_.value.code == 2


def test_empty_service_variables_mean_the_embedded_services(monkeypatch, tmp_path):
    """An environment file may leave a URL empty (the settings read that as unset); so does the runner."""
    for name in SERVICES:
        monkeypatch.setenv(name, "")
    layout = stack.StackLayout(var=tmp_path / "var", redis_port=16390)
    env = stack.stack_env(layout, "web")
    assert env["DATABASE_URL"] == f"postgresql://postgres@/medsyn?host={layout.postgres}"
    assert ":16390/1" in env["CELERY_BROKER_URL"] and "CELERY_RESULT_BACKEND" not in env
    worker = stack.stack_env(layout, "worker")
    assert not any(worker.get(name) for name in SERVICES) and worker["MEDSYN_VAR_DIR"] == str(layout.var)
    assert stack.services_missing(worker) == ["DATABASE_URL", "GRAPH_URL", "CELERY_BROKER_URL"]


# --- A worker host refuses to start without its services ---------------------------------------------------------

def test_a_worker_host_refuses_to_start_without_its_services(tmp_path):
    env = {key: value for key, value in _host_env().items() if key not in SERVICES}
    var = tmp_path / "hostb"
    for action in (["up"], ["health"], ["manage", "--", "check"]):
        result = _stack(action[0], "--role", "worker", "--var", str(var), *action[1:], env=env)
        assert result.returncode == 2, result
        assert "DATABASE_URL, GRAPH_URL, CELERY_BROKER_URL are not set" in result.stderr
    assert not var.exists()  # nothing was started, not even a pid file


def test_a_worker_host_refuses_to_start_when_a_service_does_not_answer(tmp_path):
    var = tmp_path / "hostb"
    env = _host_env(CELERY_BROKER_URL=f"redis://127.0.0.1:{stack.free_port()}/1")
    result = _stack("up", "--role", "worker", "--queues", "default", "--name", "refused", "--var", str(var), env=env)
    assert result.returncode == 1
    assert "this host cannot start yet" in result.stderr and "FAIL broker" in result.stderr
    assert "ok   database" in result.stderr and "ok   graph" in result.stderr
    assert not list((var / "log").glob("worker-*.log")) and not list((var / "run").glob("*.pid"))


def test_manage_runs_a_command_with_this_hosts_environment(tmp_path):
    """`stack manage -- <command>`: what an admin runs by hand sees what the host's processes see (its var dir)."""
    var = tmp_path / "hostb"
    result = _stack("manage", "--role", "worker", "--var", str(var), "--", "shell", "-c",
                    "from django.conf import settings; print('var', settings.VAR_DIR)", env=_host_env())
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"var {var}" in result.stdout


# --- The health command of one host -------------------------------------------------------------------------------

def test_the_health_command_checks_this_hosts_workers(tmp_path):
    name = f"absent-{uuid.uuid4().hex[:8]}"
    args = ["health", "--role", "worker", "--queues", "default", "--name", name, "--var", str(tmp_path / "var")]
    result = _stack(*args, env=_host_env())
    assert result.returncode == 1, result.stdout + result.stderr
    lines = {line.split()[1]: line for line in result.stdout.splitlines()}
    for component in ("database", "graph", "broker", "storage"):
        assert lines[component].startswith("ok "), lines[component]
    assert lines[f"worker:default@{name}"].startswith("FAIL") and "no heartbeat" in lines[f"worker:default@{name}"]

    services = _stack(*args, "--services-only", "--json", env=_host_env())
    assert services.returncode == 0, services.stdout + services.stderr
    body = json.loads(services.stdout[services.stdout.index("{"):])
    assert body["ok"] is True and [c["name"] for c in body["components"]] == ["database", "graph", "broker", "storage"]

    broken = _stack(*args, env=_host_env(GRAPH_URL="mysql://nowhere/graph"))
    assert broken.returncode == 2 and "Configuration error in GRAPH_URL" in broken.stderr


def _model_folder(root: Path, name: str) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    return folder


@pytest.mark.django_db
def test_the_model_check_wants_the_files_of_every_local_model_the_gpu_queue_may_send_here(settings, tmp_path):
    from generation.models import ModelConfig
    from medsyn_site.health import check_local_models

    settings.MODEL_CACHE_DIR = tmp_path / "models"
    ModelConfig.objects.filter(backend=ModelConfig.Backend.LOCAL).delete()
    _model_folder(settings.MODEL_CACHE_DIR, "here-model")
    ModelConfig.objects.create(name="here", backend="local", model_path="here-model")
    ModelConfig.objects.create(name="on-cuda", backend="local", model_path="cuda-model", device="cuda")
    ModelConfig.objects.create(name="too-big", backend="local", model_path="big-model", min_memory_gb=100_000)
    ModelConfig.objects.create(name="api", backend="openai", api_model="x")
    status = check_local_models(["gpu"])
    assert status.ok and status.detail == f"here ({settings.MODEL_CACHE_DIR / 'here-model'})"

    ModelConfig.objects.create(name="absent", backend="local", model_path=str(tmp_path / "elsewhere"))
    status = check_local_models(["gpu"])
    assert not status.ok and f"absent ({tmp_path / 'elsewhere'})" in status.detail and "here (" not in status.detail


def test_a_default_model_on_a_live_gpu_worker_counts_as_prepared(settings, tmp_path):
    """A web host of several has no models on its disk: the gpu workers that advertise them do."""
    from medsyn_site.core.workers import capabilities_key, capabilities_write
    from medsyn_site.health import check_model_cache, heartbeat_store_url, redis_client, worker_fleet

    english, russian = f"en-{uuid.uuid4().hex[:8]}", f"ru-{uuid.uuid4().hex[:8]}"
    settings.DEFAULT_MODEL_DIR = _model_folder(tmp_path, english)
    settings.DEFAULT_MODEL_RU_DIR = tmp_path / russian
    (settings.DEFAULT_MODEL_DIR / "model.safetensors").write_bytes(b"")
    assert not check_model_cache().ok
    client = redis_client(heartbeat_store_url())
    hostname = f"gpu@remote-{uuid.uuid4().hex[:8]}"
    capabilities_write(client, {"hostname": hostname, "queues": ["gpu"], "device": "cuda", "accelerator": "",
                                "memory_gb": 24.0, "ram_gb": 64.0, "cpus": 8, "models": [russian], "pid": 1})
    try:
        status = check_model_cache()
        assert status.ok and f"Russian: {russian} on {hostname}" in status.detail
        page = render_to_string("partials/status_workers.html", {"workers": worker_fleet()})
        assert f'data-worker="{hostname}" data-device="cuda"' in page and russian in page
    finally:
        client.delete(capabilities_key(hostname))


# --- The embedded services, opened to other hosts (MEDSYN_LISTEN_ADDRESS) -----------------------------------------

def test_the_embedded_postgresql_serves_other_hosts_only_with_its_password():
    # Not under pytest's tmp_path: pytest makes it 0700, which locks PostgreSQL's own user out (as root).
    root = Path(tempfile.mkdtemp(prefix="medsyn-listen-test-"))
    address, password = _loopback_alias(), uuid.uuid4().hex
    data_dir = root / "postgres"
    try:
        socket_url = stack.postgres_start(data_dir, "medsyn", listen=(address,), password=password)
        with psycopg.connect(socket_url) as conn:  # the stack's own processes: the Unix socket, as before
            assert conn.execute("SELECT 1").fetchone() == (1,)
        remote = f"postgresql://postgres:{password}@{address}:{stack.POSTGRES_PORT}/medsyn"
        with psycopg.connect(remote, connect_timeout=10) as conn:
            assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
        for wrong in ("", ":not-the-password"):
            with pytest.raises(psycopg.OperationalError):
                psycopg.connect(f"postgresql://postgres{wrong}@{address}:{stack.POSTGRES_PORT}/medsyn",
                                connect_timeout=10)
        stack.postgres_stop(data_dir)  # a restart (the supervisor's, after a crash) listens again
        stack.postgres_start(data_dir, "medsyn", listen=(address,), password=password)
        with psycopg.connect(remote, connect_timeout=10) as conn:
            assert conn.execute("SELECT 1").fetchone() == (1,)
        with pytest.raises(RuntimeError, match="without a password"):
            stack.postgres_listen(data_dir, socket_url, (address,), "")
    finally:
        stack.postgres_stop(data_dir)
        shutil.rmtree(root, ignore_errors=True)


def test_the_embedded_redis_listens_on_the_listen_address_too(tmp_path):
    address, password, port = _loopback_alias(), uuid.uuid4().hex, stack.free_port()
    layout = stack.StackLayout(var=tmp_path / "var", redis_port=port, listen=(address,))
    assert layout.redis_bind == ("127.0.0.1", address)
    assert stack.StackLayout(var=tmp_path, listen=("0.0.0.0",)).redis_bind == ("0.0.0.0",)
    proc = stack.falkordb_start(port, tmp_path / "falkordb", persist=False, log=tmp_path / "falkordb.log",
                                password=password, bind=layout.redis_bind)
    try:
        assert redis.Redis(host=address, port=port, password=password, socket_timeout=5).ping() is True
        assert redis.Redis(host="127.0.0.1", port=port, password=password, socket_timeout=5).ping() is True
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(host=address, port=port, socket_timeout=5).ping()
    finally:
        stack.process_group_stop(proc.pid, timeout=5)


# --- A real worker host with its own var directory ----------------------------------------------------------------

def _wait(predicate, timeout: float, what: str, log: Path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := predicate():
            return result
        time.sleep(0.3)
    tail = log.read_text()[-4000:] if log.exists() else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{tail}")


@pytest.mark.worker
def test_a_worker_host_with_its_own_var_dir_consumes_a_queue_of_the_shared_broker(django_db_setup, django_db_blocker,
                                                                                    tmp_path):
    """`up --role worker` on its own var directory, against the suite's database, graph and broker: its worker takes
    a task from the queue gpu.cuda (which the suite's own workers do not consume), its files stay in its var
    directory, its health check sees it, and a second host with the same name is refused."""
    from django.db import connection

    from medsyn_site.celery import app
    from medsyn_site.health import check_host_worker

    with django_db_blocker.unblock():
        database = connection.settings_dict["NAME"]
    suite_database = urlsplit(os.environ["DATABASE_URL"])
    env = _host_env(DATABASE_URL=urlunsplit(suite_database._replace(path=f"/{database}")))  # the test database
    name = f"hostb-{uuid.uuid4().hex[:8]}"
    var = tmp_path / "hostb"
    layout = stack.StackLayout(var=var)
    output = tmp_path / "hostb.out"
    with output.open("wb") as sink:
        runner = subprocess.Popen(
            [sys.executable, "-m", "medsyn_site.stack", "up", "--role", "worker", "--queues", "gpu.cuda", "--name",
             name, "--var", str(var)], env=env, cwd=stack.BASE_DIR, stdout=sink, stderr=subprocess.STDOUT,
            start_new_session=True)
    try:
        _wait(lambda: runner.poll() is not None or check_host_worker(f"gpu@{name}", ["gpu.cuda"]).ok, 180,
              "the worker host's heartbeat", output)
        assert runner.poll() is None, output.read_text()[-4000:]

        result = app.send_task("celery.accumulate", args=[name, 7], queue="gpu.cuda")
        assert result.get(timeout=120) == [name, 7]
        assert result.id in (var / "log" / "worker-gpu.log").read_text()  # this host ran it

        state = stack.supervisor_state_read(var)
        assert state["role"] == "worker" and state["url"] is None and list(state["processes"]) == ["worker-gpu"]
        assert stack.pidfile_pid(layout.pidfile("stack")) == runner.pid and layout.pidfile("worker-gpu").exists()
        assert "workers on this host: gpu@" + name in output.read_text()

        health = _stack("health", "--role", "worker", "--queues", "gpu.cuda", "--name", name, "--var", str(var),
                        env=env)
        assert f"ok   worker:gpu@{name}" in health.stdout, health.stdout + health.stderr
        assert "ok   processes" in health.stdout

        twin = _stack("up", "--role", "worker", "--queues", "gpu.cuda", "--name", name, "--var",
                      str(tmp_path / "twin"), env=env)
        assert twin.returncode == 1 and f"already has the name gpu@{name}" in twin.stderr
        assert not list((tmp_path / "twin" / "log").glob("worker-*.log"))
    finally:
        runner.send_signal(signal.SIGTERM)
        try:
            runner.wait(timeout=90)
        except subprocess.TimeoutExpired:
            stack.process_group_stop(runner.pid, timeout=5)
        stack.stack_down(layout)
    assert not list((var / "run").glob("*.pid")) and stack.supervisor_state_read(var) is None
    _wait(lambda: not check_host_worker(f"gpu@{name}", ["gpu.cuda"]).ok, 30, "the heartbeat to expire", output)

