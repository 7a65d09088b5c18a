"""Isolated services for benchmark scripts: a throwaway PostgreSQL (and FalkorDB when asked) in /tmp."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from medsyn_site.stack import (  # noqa: E402
    falkordb_start,
    free_port,
    postgres_start,
    postgres_stop,
    process_group_stop,
)


def bench_services_start(*, graph: bool = False) -> Path:
    """Start the services, export their URLs, set up Django; everything is removed at exit."""
    root = Path(tempfile.mkdtemp(prefix="medsyn-bench-"))
    os.environ["DATABASE_URL"] = postgres_start(root / "postgres", "medsyn")
    port = free_port()
    redis = falkordb_start(port, root / "falkordb", persist=False, log=root / "falkordb.log") if graph else None
    os.environ["GRAPH_URL"] = f"falkordb://127.0.0.1:{port}/bench"
    os.environ["CELERY_BROKER_URL"] = f"redis://127.0.0.1:{port}/1"
    os.environ["MEDSYN_VAR_DIR"] = str(root / "var")
    os.environ["DJANGO_SETTINGS_MODULE"] = "medsyn_site.settings.test"
    os.environ["LOG_LEVEL"] = "WARNING"
    os.environ["DJANGO_ALLOWED_HOSTS"] = "testserver,127.0.0.1,localhost"

    def stop() -> None:
        if redis is not None:
            process_group_stop(redis.pid, timeout=5)
        postgres_stop(root / "postgres")
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(stop)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)
    return root


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]
