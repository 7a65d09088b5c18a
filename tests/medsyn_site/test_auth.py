"""Brute-force protection: django-axes locks a username/address pair out after a few wrong passwords (log-in page
and POST /api/token/), and DRF throttles limit the API per address and per user."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.core.cache import cache
from rest_framework.throttling import SimpleRateThrottle

from tests.medsyn_site.factories import PASSWORD

pytestmark = pytest.mark.django_db

WRONG_TRIES = 50


def _login(client, username: str, password: str, address: str = "127.0.0.1"):
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def _token(client, username: str, password: str, address: str = "127.0.0.1"):
    return client.post("/api/token/", {"username": username, "password": password}, REMOTE_ADDR=address)


def test_login_page_locks_out_after_wrong_passwords(client, make_user, settings):
    make_user("curator", username="target")
    statuses = [_login(client, "target", f"guess-{i}").status_code for i in range(WRONG_TRIES)]
    limit = settings.AXES_FAILURE_LIMIT
    assert statuses[: limit - 1] == [200] * (limit - 1)  # the form again, "didn't match"
    assert set(statuses[limit:]) == {429}

    right = _login(client, "target", PASSWORD)
    assert right.status_code == 429, "the right password must not get in during the lock-out"
    assert "_auth_user_id" not in client.session
    page = right.content.decode()
    assert 'data-testid="locked-out"' in page and "Too many failed log-in attempts" in page
    assert "Try again in 15 minutes" in page and right["Retry-After"] == "900"
    assert 'name="username"' in page  # still the log-in page
    assert 'value="target"' in page  # with the username kept, to try again later


def test_lock_out_is_per_username_and_address(client, make_user, settings):
    make_user("curator", username="target")
    make_user("curator", username="bystander")
    for i in range(settings.AXES_FAILURE_LIMIT):
        _login(client, "target", f"guess-{i}", address="203.0.113.5")
    assert _login(client, "target", PASSWORD, address="203.0.113.5").status_code == 429
    # The same account from another address, and another account from the same address, still log in.
    assert _login(client, "target", PASSWORD, address="198.51.100.7").status_code == 302
    client.logout()
    assert _login(client, "bystander", PASSWORD, address="203.0.113.5").status_code == 302


def test_lock_out_ends_after_the_cool_off(client, make_user, settings):
    from axes.models import AccessAttempt

    make_user("curator", username="target")
    for i in range(settings.AXES_FAILURE_LIMIT):
        _login(client, "target", f"guess-{i}")
    assert _login(client, "target", PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=AccessAttempt.objects.get().attempt_time
                                 - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert _login(client, "target", PASSWORD).status_code == 302


def test_a_successful_log_in_resets_the_count(client, make_user, settings):
    make_user("curator", username="target")
    for i in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "target", f"guess-{i}")
    assert _login(client, "target", PASSWORD).status_code == 302
    client.logout()
    for i in range(settings.AXES_FAILURE_LIMIT - 1):
        _login(client, "target", f"guess-{i}")
    assert _login(client, "target", PASSWORD).status_code == 302


def test_token_endpoint_locks_out_after_wrong_passwords(client, make_user, settings):
    make_user("curator", username="target")
    answers = [_token(client, "target", f"guess-{i}") for i in range(WRONG_TRIES)]
    limit = settings.AXES_FAILURE_LIMIT
    assert [a.status_code for a in answers[: limit - 1]] == [400] * (limit - 1)
    assert {a.status_code for a in answers[limit:]} == {429}

    right = _token(client, "target", PASSWORD)
    assert right.status_code == 429 and "token" not in right.json()
    assert right.json()["detail"].startswith("Too many failed log-in attempts")
    assert right["Retry-After"] == "900"
    json_answer = client.post("/api/token/", {"username": "target", "password": PASSWORD},
                              content_type="application/json")
    assert json_answer.status_code == 429 and "detail" in json_answer.json()


def test_login_page_and_token_endpoint_share_the_count(client, make_user, settings):
    make_user("curator", username="target")
    for i in range(settings.AXES_FAILURE_LIMIT):
        _login(client, "target", f"guess-{i}")
    assert _token(client, "target", PASSWORD).status_code == 429


@pytest.fixture
def throttle_rates(monkeypatch):
    """Lower DRF throttle rates for one test (DRF binds the rates dict to its throttle class at import, so the
    settings fixture cannot change them), on a clean throttle cache."""
    cache.clear()

    def lower(**rates: str) -> None:
        for scope, rate in rates.items():
            monkeypatch.setitem(SimpleRateThrottle.THROTTLE_RATES, scope, rate)

    yield lower
    cache.clear()


def test_token_endpoint_is_throttled_per_address(client, make_user, throttle_rates):
    throttle_rates(token="5/minute")
    make_user("curator", username="target")
    users = [make_user("curator").username for _ in range(6)]  # different accounts: axes does not count these
    statuses = [_token(client, name, PASSWORD).status_code for name in users]
    assert statuses == [200] * 5 + [429]
    assert "throttled" in _token(client, "target", PASSWORD).json()["detail"]
    assert _token(client, "target", PASSWORD, address="198.51.100.7").status_code == 200


def test_api_is_throttled_per_user(client, make_user, throttle_rates):
    throttle_rates(user="3/minute")
    client.force_login(make_user("researcher"))
    assert [client.get("/api/me/").status_code for _ in range(4)] == [200, 200, 200, 429]
    client.force_login(make_user("researcher"))
    assert client.get("/api/me/").status_code == 200


def test_anonymous_api_requests_are_throttled_per_address(client, make_user, throttle_rates):
    throttle_rates(anon="2/minute")
    users = [make_user("curator").username for _ in range(3)]
    assert [_token(client, name, PASSWORD).status_code for name in users] == [200, 200, 429]


def test_a_throttled_answer_says_when_to_come_back(client, make_user, throttle_rates):
    throttle_rates(user="2/minute")
    client.force_login(make_user("researcher"))
    answers = [client.get("/api/me/") for _ in range(3)]
    throttled = answers[-1]
    assert throttled.status_code == 429
    wait = int(throttled["Retry-After"])
    assert 0 < wait <= 60
    assert throttled.json()["detail"] == f"Request was throttled. Expected available in {wait} seconds."



def test_a_client_cannot_pick_its_own_address(client, make_user, settings):
    """No proxy is trusted by default: an X-Forwarded-For header sent by the client does not escape the lock-out."""
    make_user("curator", username="target")
    for i in range(settings.AXES_FAILURE_LIMIT):
        _login(client, "target", f"guess-{i}")
    spoofed = client.post("/accounts/login/", {"username": "target", "password": PASSWORD},
                          REMOTE_ADDR="127.0.0.1", HTTP_X_FORWARDED_FOR="198.51.100.99")
    assert spoofed.status_code == 429
