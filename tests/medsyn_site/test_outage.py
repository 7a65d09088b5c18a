"""A database outage gives a clear 503 page, never a 500."""

from __future__ import annotations

import pytest
from django.db import connections


@pytest.fixture
def database_down(django_db_blocker, tmp_path):
    connection = connections["default"]
    with django_db_blocker.unblock():
        original = connection.settings_dict["HOST"]
        connection.close()
        connection.settings_dict["HOST"] = str(tmp_path)  # a socket directory with no server in it
        try:
            yield
        finally:
            connection.close()
            connection.settings_dict["HOST"] = original


@pytest.fixture
def logged_in_client(client, transactional_db):
    from django.contrib.auth.models import User

    client.force_login(User.objects.create_user("outage_viewer"))
    return client


def test_pages_answer_503_with_a_banner_when_the_database_is_down(logged_in_client, database_down):
    client = logged_in_client
    response = client.get("/")
    assert response.status_code == 503
    body = response.content.decode()
    assert 'data-testid="outage-banner"' in body and "The database is unavailable." in body

    api = client.get("/api/me/")
    assert api.status_code == 503 and api.json()["component"] == "database"

    health = client.get("/healthz")
    assert health.status_code == 503
    database = next(c for c in health.json()["components"] if c["name"] == "database")
    assert database["ok"] is False
