"""The broker check works for any Celery broker, not only Redis; heartbeats degrade clearly without Redis.

AMQP cases point at a closed port on 127.0.0.1 (nothing listens there), so no network is needed; the Redis
case uses the suite's own FalkorDB/Redis.
"""

from __future__ import annotations

import pytest

from medsyn_site import health
from medsyn_site.stack import free_port


@pytest.fixture
def amqp_broker(settings) -> str:
    """An AMQP broker URL on a closed local port, with the suite's Redis kept as the result backend."""
    url = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    settings.CELERY_BROKER_URL = url
    return url


def test_redis_broker_is_up_against_the_suite_redis(settings):
    assert health.url_scheme(settings.CELERY_BROKER_URL) == "redis"
    status = health.check_broker()
    assert status.ok, status.detail
    assert status.label == "Broker (Redis)" and status.latency_ms is not None


@pytest.mark.parametrize("scheme", ["amqp", "pyamqp", "amqps"])
def test_amqp_broker_on_a_closed_port_is_down_with_a_message(settings, scheme):
    settings.CELERY_BROKER_URL = f"{scheme}://guest:guest@127.0.0.1:{free_port()}//"
    status = health.check_broker()
    assert status.ok is False and status.latency_ms is None
    assert status.label == "Broker (AMQP)"
    assert "refused" in status.detail.lower(), status.detail
    assert "guest:guest" not in status.detail


@pytest.mark.parametrize("url", ["nosuchbroker://127.0.0.1:5672//", "127.0.0.1:5672"])
def test_unsupported_broker_scheme_is_down_with_a_clear_message(settings, url):
    settings.CELERY_BROKER_URL = url
    status = health.check_broker()
    assert status.ok is False and status.label == "Broker"
    assert "unsupported broker scheme" in status.detail


@pytest.mark.django_db
def test_healthz_with_an_unreachable_amqp_broker_is_503_not_500(client, amqp_broker, make_user):
    client.force_login(make_user("admin"))  # the detail is for staff
    response = client.get("/healthz")
    assert response.status_code == 503
    components = {c["name"]: c for c in response.json()["components"]}
    assert components["broker"]["ok"] is False and "refused" in components["broker"]["detail"].lower()
    assert components["database"]["ok"] is True


def test_heartbeats_use_the_redis_result_backend_when_the_broker_is_amqp(settings, amqp_broker):
    from medsyn_site.celery import WorkerHeartbeat

    assert health.heartbeat_store_url() == settings.CELERY_RESULT_BACKEND
    queue = "heartbeat-probe"
    heartbeat = WorkerHeartbeat("probe@test-host", [queue])
    try:
        assert heartbeat.beat() is True
        status = health.check_worker_queue(queue)
        assert status.ok, status.detail
        assert status.detail == "probe@test-host"
    finally:
        health.redis_client(settings.CELERY_RESULT_BACKEND).delete(health.heartbeat_key(queue, "probe@test-host"))


def test_worker_queue_check_explains_when_no_redis_holds_heartbeats(settings, amqp_broker):
    from medsyn_site.celery import WorkerHeartbeat

    settings.CELERY_RESULT_BACKEND = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    assert health.heartbeat_store_url() is None
    assert WorkerHeartbeat("probe@test-host", ["gpu"]).beat() is False
    status = health.check_worker_queue("gpu")
    assert status.ok is False
    assert "worker heartbeats need Redis" in status.detail and "amqp://" in status.detail
