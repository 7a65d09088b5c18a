"""/healthz and the 503 page tell anyone whether things work, never where they are or how they failed.

Anonymous users get the overall status and up/down per component; staff get the details. The 503 page names the
component in plain words, without the exception text (socket paths, hosts, ports). The suite's own Redis/FalkorDB
asks for a password (tests/plugin_services.py), as the one `make up` starts does.
"""

from __future__ import annotations

import pytest
import redis
from django.db import connections
from django.test import RequestFactory

from medsyn_site.core.errors import BrokerUnavailable
from medsyn_site.env import graph_from_url
from medsyn_site.middleware import ServiceUnavailableMiddleware
from medsyn_site.stack import free_port


@pytest.fixture
def database_down(django_db_blocker, tmp_path):
    """The default connection points at a socket directory with no server in it."""
    connection = connections["default"]
    with django_db_blocker.unblock():
        original = connection.settings_dict["HOST"]
        connection.close()
        connection.settings_dict["HOST"] = str(tmp_path)
        try:
            yield str(tmp_path)
        finally:
            connection.close()
            connection.settings_dict["HOST"] = original


def _components(response) -> dict[str, dict]:
    return {c["name"]: c for c in response.json()["components"]}


def _secrets(settings) -> list[str]:
    """What an anonymous answer must not contain: addresses, the graph URL, the model path, the socket directory."""
    return ["127.0.0.1", settings.GRAPH.display, f":{settings.GRAPH.port}", str(settings.DEFAULT_MODEL_DIR),
            str(settings.DEFAULT_MODEL_RU_DIR), settings.DATABASES["default"]["HOST"], "Error", "latency"]


@pytest.mark.django_db
def test_anonymous_healthz_gives_status_and_up_down_only(client, settings):
    response = client.get("/healthz")
    body = response.content.decode()
    assert set(response.json()) == {"status", "components"}
    assert all(set(component) == {"name", "ok"} for component in response.json()["components"])
    assert _components(response)["database"]["ok"] is True
    for secret in _secrets(settings):
        assert secret not in body, secret


@pytest.mark.django_db
def test_anonymous_healthz_hides_why_the_graph_is_down(client, settings):
    settings.GRAPH = graph_from_url("GRAPH_URL", f"falkordb://127.0.0.1:{free_port()}/nothing")
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["status"] == "degraded"
    assert _components(response)["graph"] == {"name": "graph", "ok": False}
    assert "unreachable" not in response.content.decode() and str(settings.GRAPH.port) not in response.content.decode()


@pytest.mark.django_db
def test_non_staff_users_get_the_anonymous_healthz(client, make_user, settings):
    client.force_login(make_user("researcher"))
    response = client.get("/healthz")
    assert all(set(component) == {"name", "ok"} for component in response.json()["components"])
    assert settings.GRAPH.display not in response.content.decode()


@pytest.mark.django_db
def test_staff_healthz_has_the_details(client, make_user, settings):
    client.force_login(make_user("admin"))
    components = _components(client.get("/healthz"))
    assert components["graph"]["detail"] == settings.GRAPH.display
    assert components["graph"]["latency_ms"] is not None and components["graph"]["label"]
    assert str(settings.DEFAULT_MODEL_DIR) in components["model_cache"]["detail"]
    assert str(settings.DEFAULT_MODEL_RU_DIR) in components["model_cache"]["detail"]


def test_healthz_with_the_database_down_still_answers_a_logged_in_browser(client, make_user, transactional_db,
                                                                          database_down):
    """The session (and so is_staff) lives in the database: with it down, the viewer counts as anonymous."""
    client.cookies["sessionid"] = "a-session-that-cannot-be-looked-up"
    response = client.get("/healthz")
    assert response.status_code == 503
    assert _components(response)["database"] == {"name": "database", "ok": False}
    assert database_down not in response.content.decode()


@pytest.fixture
def logged_in_client(client, transactional_db):
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_user("exposure_viewer"))
    return client


def test_503_page_for_a_database_outage_has_no_exception_text(logged_in_client, database_down):
    response = logged_in_client.get("/")
    body = response.content.decode()
    assert response.status_code == 503
    assert "The database is unavailable." in body and 'data-status="503"' in body
    assert database_down not in body
    for leak in ("OperationalError", "connection to server", "socket", "No such file"):
        assert leak not in body, leak


@pytest.mark.django_db
def test_503_page_for_a_graph_outage_has_no_address(client, make_user, settings):
    settings.GRAPH = graph_from_url("GRAPH_URL", f"falkordb://127.0.0.1:{free_port()}/nothing")
    client.force_login(make_user("researcher"))
    response = client.get("/graph/code/J06/")
    body = response.content.decode()
    assert response.status_code == 503 and "The graph database is unavailable." in body
    assert str(settings.GRAPH.port) not in body and "unreachable" not in body


def test_a_broker_outage_is_a_503_without_the_broker_url():
    request = RequestFactory().get("/generation/")
    error = BrokerUnavailable("redis://:hunter2@127.0.0.1:6390/1 refused the connection")
    response = ServiceUnavailableMiddleware(lambda r: None).process_exception(request, error)
    body = response.content.decode()
    assert response.status_code == 503 and 'data-component="broker"' in body
    assert "hunter2" not in body and "6390" not in body and "refused" not in body


def test_the_suite_redis_refuses_a_client_without_the_password(settings):
    port = settings.GRAPH.port
    assert settings.GRAPH.password, "tests/plugin_services.py starts Redis with a password"
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(port=port, socket_timeout=2).ping()
    assert redis.Redis(port=port, password=settings.GRAPH.password, socket_timeout=2).ping() is True


def test_the_app_reaches_graph_and_broker_with_the_password():
    from medsyn_site import health

    assert health.check_graph().ok and health.check_broker().ok
