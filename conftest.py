"""Root fixtures: services are started by tests/plugin_services.py; here are the pieces tests share."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from medsyn_site.stack import BASE_DIR, celery_worker_command, process_group_stop


def pytest_configure(config) -> None:
    """The Russian catalogue compiled before any page renders (a fresh clone ships only the .po)."""
    from medsyn_site.catalogue import catalogues_compile

    catalogues_compile()


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": "/usr/bin/chromium",
        "args": ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"],
    }


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """The tiny test model, built once into the suite's default-model directory."""
    from tests.tiny_model import tiny_model_build

    target = settings.DEFAULT_MODEL_DIR
    if not (target / "config.json").exists():
        tiny_model_build(target)
    russian = settings.DEFAULT_MODEL_RU_DIR  # the Russian default is the same tiny model in tests
    if not russian.exists():
        russian.parent.mkdir(parents=True, exist_ok=True)
        russian.symlink_to(target, target_is_directory=True)
    return target


@pytest.fixture(scope="session")
def roles(django_db_setup, django_db_blocker):
    from medsyn_site.roles import roles_sync

    with django_db_blocker.unblock():
        roles_sync()


@pytest.fixture
def make_user(db):
    """A user with a role (tests.medsyn_site.factories.UserFactory), named after the role unless named."""
    # A transactional test before this one flushed every table, permissions and content types included (Django
    # makes them at migrate, not at flush): make them again, as migrate's post_migrate would.
    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Permission, User
    from django.contrib.contenttypes.management import create_contenttypes

    from tests.medsyn_site.factories import PASSWORD, UserFactory

    if not Permission.objects.filter(content_type__app_label="medsyn_site").exists():
        for config in apps.get_app_configs():
            create_contenttypes(config, verbosity=0)
            create_permissions(config, verbosity=0)

    def make(role: str | None = None, username: str | None = None, password: str = PASSWORD) -> User:
        return UserFactory(username=username or f"{role or 'nobody'}_{User.objects.count()}", password=password,
                           role=role)

    return make


def _worker_env(database_name: str) -> dict[str, str]:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(os.environ["DATABASE_URL"])
    env = dict(os.environ)
    env["DATABASE_URL"] = urlunsplit(parts._replace(path=f"/{database_name}"))
    env["DJANGO_SETTINGS_MODULE"] = "medsyn_site.settings.test"
    env["PYTHONUNBUFFERED"] = "1"
    return env


class WorkerPool:
    """Real Celery workers (gpu: solo pool; default+api: threads) against the suite's broker and test DB."""

    def __init__(self, database_name: str, log_dir: Path) -> None:
        self.database_name = database_name
        self.log_dir = log_dir
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str) -> None:
        queues, pool, concurrency = {"gpu": (["gpu"], "solo", 1), "default": (["default", "api"], "threads", 4)}[name]
        log = open(self.log_dir / f"worker-{name}.log", "ab")  # noqa: SIM115 - held by the child
        self.procs[name] = subprocess.Popen(
            celery_worker_command(queues, name, pool=pool, concurrency=concurrency),
            env=_worker_env(self.database_name), cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, name: str, timeout: float = 60) -> None:
        from medsyn_site.health import check_worker_queue

        queue = "gpu" if name == "gpu" else "default"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.procs[name].poll() is not None:
                raise RuntimeError(f"worker {name} exited; see {self.log_dir / f'worker-{name}.log'}")
            status = check_worker_queue(queue)
            if status.ok and f"{name}@" in status.detail:
                return
            time.sleep(0.2)
        raise RuntimeError(f"worker {name} not ready after {timeout} s")

    def kill(self, name: str, sig: int) -> None:
        os.killpg(self.procs[name].pid, sig)
        self.procs[name].wait(timeout=30)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None and proc.poll() is None:
            process_group_stop(proc.pid, timeout=15)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.stop(name)

    @contextlib.contextmanager
    def paused(self):
        """The workers stopped (SIGSTOP) for the block, then continued: a fleet of other worker hosts
        (tests/generation/test_fleet.py) runs on a broker database of its own, whose heartbeats these workers cannot
        see; running, their sweep would take the fleet's running chunks for a dead worker's and run them too."""
        groups = [proc.pid for proc in self.procs.values() if proc.poll() is None]
        for group in groups:
            os.killpg(group, signal.SIGSTOP)
        try:
            yield
        finally:
            for group in groups:
                os.killpg(group, signal.SIGCONT)


@pytest.fixture(scope="session")
def celery_workers(django_db_setup, django_db_blocker, tiny_model_dir, tmp_path_factory):
    from django.db import connection

    with django_db_blocker.unblock():
        database_name = connection.settings_dict["NAME"]
    pool = WorkerPool(database_name, tmp_path_factory.mktemp("workers"))
    for name in ("gpu", "default"):
        pool.start(name)
    try:
        for name in ("gpu", "default"):
            pool.wait_ready(name)
        yield pool
    finally:
        pool.stop_all()


@pytest.fixture
def live_login(live_server, page):
    """Log a user in through the real login form."""

    def login(username: str, password: str = "pw-test-123456"):
        page.goto(f"{live_server.url}/accounts/login/")
        page.fill("input[name=username]", username)
        page.fill("input[name=password]", password)
        page.click("[data-testid=login-submit]")  # not the header's language buttons
        page.wait_for_url(f"{live_server.url}/")
        return page

    return login


def pytest_report_header(config) -> list[str]:
    return [f"medsyn services: db={os.environ.get('DATABASE_URL')} graph={os.environ.get('GRAPH_URL')}",
            f"python {sys.version.split()[0]}"]


# Fixtures that need a real component, and the marker that selects (or deselects) the tests using them. A test is
# marked by what it uses, not by hand, so `-m "not browser and not worker"` never starts a browser or a worker.
SELF_SELECTING_MARKERS = {"live_server": "browser", "page": "browser", "celery_workers": "worker"}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for fixture, marker in SELF_SELECTING_MARKERS.items():
            if fixture in used and item.get_closest_marker(marker) is None:
                item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture
def scratch_database(django_db_blocker):
    """An empty database for a migration test (tests/scratch_database.py)."""
    from tests.scratch_database import scratch_database_open

    yield from scratch_database_open(django_db_blocker)
