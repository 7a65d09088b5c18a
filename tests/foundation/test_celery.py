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
