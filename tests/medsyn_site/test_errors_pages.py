"""Friendly error pages: never Django's technical pages (URL patterns, settings), 500 without the database."""

from __future__ import annotations

import pytest
from django.db import connections
from django.urls import path


def _boom(request):
    raise ValueError("int() of '²': a crafted query string")


# This module doubles as a URLconf for the 500 test: a view that fails like a crafted ?job=² once did.
urlpatterns = [path("boom/", _boom)]


@pytest.mark.django_db
def test_anonymous_404_is_the_friendly_page_without_url_patterns(client):
    response = client.get("/no/such/page/")
    body = response.content.decode()
    assert response.status_code == 404
    assert 'data-testid="error-page"' in body and 'data-status="404"' in body and "Page not found" in body
    for technical in ("URLconf", "urlpatterns", "api/generation/", "admin/", "Django tried these URL patterns"):
        assert technical not in body, technical


@pytest.mark.django_db
def test_403_is_the_friendly_page(client, make_user):
    client.force_login(make_user("physician"))
    response = client.get("/status/")
    assert response.status_code == 403
    assert 'data-status="403"' in response.content.decode() and "Access denied" in response.content.decode()


@pytest.fixture
def failing_urls(settings):
    settings.ROOT_URLCONF = __name__


@pytest.mark.django_db
def test_500_is_the_friendly_page_without_the_error(client, failing_urls):
    client.raise_request_exception = False
    response = client.get("/boom/?job=²")
    body = response.content.decode()
    assert response.status_code == 500
    assert 'data-status="500"' in body and "Something went wrong" in body
    assert "crafted" not in body and "Traceback" not in body and "SECRET_KEY" not in body


def test_500_page_renders_with_the_database_down(client, failing_urls, transactional_db, tmp_path,
                                                  django_db_blocker):
    connection = connections["default"]
    with django_db_blocker.unblock():
        original = connection.settings_dict["HOST"]
        connection.close()
        connection.settings_dict["HOST"] = str(tmp_path)
        try:
            client.raise_request_exception = False
            client.cookies["sessionid"] = "needs-the-database-to-look-up"
            response = client.get("/boom/")
        finally:
            connection.close()
            connection.settings_dict["HOST"] = original
    assert response.status_code == 500 and 'data-status="500"' in response.content.decode()


def test_400_is_the_friendly_page(client):
    response = client.get("/", HTTP_HOST="evil.example")  # not in ALLOWED_HOSTS: DisallowedHost, a 400
    assert response.status_code == 400
    assert 'data-status="400"' in response.content.decode() and "Bad request" in response.content.decode()
