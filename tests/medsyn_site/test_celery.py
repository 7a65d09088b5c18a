"""A task round trip through the real broker and real workers."""

from __future__ import annotations

import pytest

from medsyn_site.tasks import echo

pytestmark = pytest.mark.worker


def test_round_trip_on_the_gpu_queue(celery_workers):
    result = echo.apply_async(args=[{"ping": "пинг"}], queue="gpu")
    reply = result.get(timeout=30)
    assert reply["payload"] == {"ping": "пинг"}
    assert reply["queue"] == "gpu"
    assert reply["hostname"].startswith("gpu@")
    assert reply["task_id"] == result.id


def test_round_trip_on_the_default_queue(celery_workers):
    reply = echo.apply_async(args=[{"n": 1}], queue="default").get(timeout=30)
    assert reply["hostname"].startswith("default@")


def test_worker_logs_task_id_and_duration_as_json(celery_workers):
    import json
    import time

    result = echo.apply_async(args=[{"log": True}], queue="gpu")
    result.get(timeout=30)
    log_file = celery_workers.log_dir / "worker-gpu.log"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        for line in log_file.read_text().splitlines():
            if result.id in line and "task finished" in line:
                record = json.loads(line)
                assert record["task_id"] == result.id and record["task"] == "medsyn_site.echo"
                assert isinstance(record["duration_s"], float) and record["state"] == "SUCCESS"
                return
        time.sleep(0.2)
    raise AssertionError(f"no 'task finished' JSON record for {result.id} in {log_file}")
