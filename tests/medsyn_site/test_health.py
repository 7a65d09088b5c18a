from __future__ import annotations

import pytest
from django.urls import reverse


def _prepared(folder):
    """A model folder as `make up` leaves it, as far as the check looks: its config and safetensors weights."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"")
    return folder


@pytest.mark.django_db
def test_healthz_reports_each_component(client, celery_workers, make_user, settings, tiny_model_dir):
    settings.DEFAULT_MODEL_RU_DIR = tiny_model_dir  # the suite prepares one model; both defaults must be there
    client.force_login(make_user("admin"))  # latencies and details are for staff (test_health_exposure.py)
    response = client.get("/healthz")
    body = response.json()
    names = [c["name"] for c in body["components"]]
    assert names == ["database", "graph", "broker", "worker:gpu", "worker:api", "worker:default", "model_cache"]
    assert response.status_code == 200, body
    assert body["status"] == "ok"
    assert all(c["latency_ms"] is not None for c in body["components"])


def test_the_model_cache_needs_both_default_models_and_names_each(settings, tmp_path):
    from medsyn_site.health import check_model_cache

    settings.DEFAULT_MODEL_DIR = _prepared(tmp_path / "smollm2")
    settings.DEFAULT_MODEL_RU_DIR = tmp_path / "gemma3"
    status = check_model_cache()
    assert not status.ok and status.latency_ms is None
    assert f"Russian: {tmp_path / 'gemma3'}" in status.detail.split("prepared:")[0]
    assert f"English: {tmp_path / 'smollm2'}" in status.detail.split("prepared:")[1]

    _prepared(tmp_path / "gemma3")
    (tmp_path / "smollm2" / "model.safetensors").unlink()  # a conversion that did not finish
    status = check_model_cache()
    assert not status.ok and f"English: {tmp_path / 'smollm2'}" in status.detail.split("prepared:")[0]

    (tmp_path / "smollm2" / "model.safetensors").write_bytes(b"")
    status = check_model_cache()
    assert status.ok and status.detail == f"English: {tmp_path / 'smollm2'}; Russian: {tmp_path / 'gemma3'}"


@pytest.mark.django_db
def test_healthz_degraded_when_the_graph_is_unreachable(client, settings, make_user):
    from medsyn_site.env import graph_from_url
    from medsyn_site.stack import free_port

    client.force_login(make_user("admin"))
    settings.GRAPH = graph_from_url("GRAPH_URL", f"falkordb://127.0.0.1:{free_port()}/nothing")
    response = client.get("/healthz")
    assert response.status_code == 503
    graph = next(c for c in response.json()["components"] if c["name"] == "graph")
    assert graph["ok"] is False and "unreachable" in graph["detail"]


@pytest.mark.django_db
def test_status_page_needs_permission(client, make_user):
    client.force_login(make_user("physician"))
    assert client.get(reverse("status")).status_code == 403
    client.force_login(make_user("researcher"))
    assert client.get(reverse("status")).status_code == 200


@pytest.mark.django_db
def test_pages_need_login(client):
    response = client.get("/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


@pytest.mark.django_db
def test_api_token_and_me(client, make_user):
    make_user("curator", username="cur")
    bad = client.post("/api/token/", {"username": "cur", "password": "wrong"})
    assert bad.status_code == 400 and bad.json() == {"detail": "Invalid username or password."}
    token = client.post("/api/token/", {"username": "cur", "password": "pw-test-123456"}).json()["token"]
    me = client.get("/api/me/", HTTP_AUTHORIZATION=f"Token {token}").json()
    assert me["username"] == "cur" and me["roles"] == ["curator"]
    assert "curate_notes" in me["permissions"] and "rate_notes" not in me["permissions"]
    assert client.get("/api/me/").status_code in (401, 403)


@pytest.mark.django_db
def test_openapi_schema_and_swagger_are_local(client, make_user):
    client.force_login(make_user("researcher"))
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/me/" in schema.content
    docs = client.get("/api/docs/").content.decode()
    assert "swagger-ui" in docs and "cdn" not in docs.lower()


@pytest.mark.django_db
def test_demo_users_cover_every_role_and_are_idempotent():
    from django.contrib.auth.models import User

    from medsyn_site.demo import DEMO_LOGINS, demo_users_ensure
    from medsyn_site.roles import ROLE_NAMES

    assert tuple(login.role for login in DEMO_LOGINS) == ROLE_NAMES
    demo_users_ensure()
    demo_users_ensure()
    assert User.objects.filter(username__startswith="demo_").count() == len(ROLE_NAMES)
    for login in DEMO_LOGINS:
        user = User.objects.get(username=login.username)
        assert user.check_password(login.password)
        assert list(user.groups.values_list("name", flat=True)) == [login.role]


@pytest.mark.django_db
def test_load_demo_data_is_idempotent_and_loads_real_notes():
    from django.contrib.auth.models import User
    from django.core.management import call_command

    from generation.models import Note

    call_command("load_demo_data", skip_graph=True)
    counts = (User.objects.count(), Note.objects.filter(origin="real").count())
    assert counts[1] == 4690 + 848
    call_command("load_demo_data", skip_graph=True)
    assert (User.objects.count(), Note.objects.filter(origin="real").count()) == counts
