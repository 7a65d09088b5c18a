"""Shared set-up for the graph benchmarks (not a benchmark itself): private FalkorDB and PostgreSQL."""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from medsyn_site.stack import falkordb_start, free_port, postgres_start, postgres_stop, process_group_stop  # noqa: E402


def services_start(*, with_database: bool, settings_module: str = "medsyn_site.settings.test") -> None:
    """Start FalkorDB (and PostgreSQL when asked) on free ports and point Django's settings at them."""
    root = Path(tempfile.mkdtemp(prefix="medsyn-bench-"))
    port = free_port()
    proc = falkordb_start(port, root / "falkordb", persist=False, log=root / "falkordb.log")

    def stop() -> None:
        process_group_stop(proc.pid, timeout=5)
        if with_database:
            postgres_stop(root / "postgres")
        shutil.rmtree(root, ignore_errors=True)

    atexit.register(stop)
    os.environ.update({
        "GRAPH_URL": f"falkordb://127.0.0.1:{port}/medsyn_bench",
        "CELERY_BROKER_URL": f"redis://127.0.0.1:{port}/1",
        "MEDSYN_VAR_DIR": str(root / "var"),
        "DJANGO_SETTINGS_MODULE": settings_module,
        "DJANGO_DEBUG": "false",
        "DJANGO_ALLOWED_HOSTS": "testserver,localhost",
        "LOG_LEVEL": "WARNING",
    })
    if with_database:
        os.environ["DATABASE_URL"] = postgres_start(root / "postgres", "medsyn_bench")
    import django

    django.setup()
