"""API tokens die: they expire, a password change revokes them whichever way it is made, their owner revokes or
renews them from the profile page or the API, an administrator revokes them in the admin (medsyn_site.accounts)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone
from rest_framework.authtoken.models import Token

from tests.medsyn_site.factories import PASSWORD

pytestmark = pytest.mark.django_db

NEW_PASSWORD = "Another-Long-Pass-42"


def _issue(client: Client, username: str, password: str = PASSWORD, **headers) -> dict:
    response = client.post("/api/token/", {"username": username, "password": password}, **headers)
    assert response.status_code == 200, response.content
    return response.json()


def _me(key: str):
    """GET /api/me/ with the token only (a fresh client: no session to fall back on)."""
    return Client().get("/api/me/", HTTP_AUTHORIZATION=f"Token {key}")


def _works(key: str) -> bool:
    response = _me(key)
    assert response.status_code in (200, 401), response.content
    return response.status_code == 200


def _backdate(key: str, by: timedelta) -> None:
    Token.objects.filter(key=key).update(created=timezone.now() - by)


def _stamp(moment) -> str:
    """A date and time as the profile page writes them."""
    return timezone.localtime(moment).strftime("%Y-%m-%d %H:%M")


def test_asking_twice_returns_the_same_token_with_its_expiry(client, make_user, settings):
    user = make_user("researcher")
    first = _issue(client, user.username)
    second = _issue(client, user.username)
    assert first["token"] == second["token"] and _works(first["token"])
    token = Token.objects.get(user=user)
    assert first["created"] == second["created"]
    expires = timezone.datetime.fromisoformat(first["expires_at"])
    assert expires == token.created + settings.API_TOKEN_TTL
    assert _me(first["token"]).json()["username"] == user.username


def test_an_expired_token_answers_401_and_asking_again_issues_a_new_one(client, make_user, settings):
    settings.API_TOKEN_TTL = timedelta(hours=2)  # configurable
    user = make_user("researcher")
    old = _issue(client, user.username)["token"]
    _backdate(old, timedelta(hours=1))
    assert _works(old), "still within its lifetime"
    assert _issue(client, user.username)["token"] == old
    _backdate(old, timedelta(hours=2, seconds=1))

    refused = _me(old)
    assert refused.status_code == 401
    assert refused.json()["detail"] == "Token expired. Ask for a new one with POST /api/token/."
    assert refused["WWW-Authenticate"] == "Token"

    # The stale token in the header does not stand in the way of asking for a new one.
    renewed = _issue(client, user.username, HTTP_AUTHORIZATION=f"Token {old}")
    assert renewed["token"] != old
    assert _works(renewed["token"]) and not _works(old)
    assert list(Token.objects.filter(user=user).values_list("key", flat=True)) == [renewed["token"]]


def test_password_change_page_revokes_the_token(client, make_user):
    user = make_user("physician")
    key = _issue(client, user.username)["token"]
    client.force_login(user)
    response = client.post("/accounts/password/", {"old_password": PASSWORD, "new_password1": NEW_PASSWORD,
                                                   "new_password2": NEW_PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/accounts/password/done/"
    assert not _works(key)
    assert client.get("/accounts/profile/").status_code == 200  # the session itself survives the change
    assert _works(_issue(Client(), user.username, NEW_PASSWORD)["token"])


def test_admin_password_form_revokes_the_token(client, make_user):
    user = make_user("curator")
    key = _issue(client, user.username)["token"]
    client.force_login(make_user("admin"))
    response = client.post(f"/admin/auth/user/{user.pk}/password/",
                           {"usable_password": "true", "password1": NEW_PASSWORD, "password2": NEW_PASSWORD})
    assert response.status_code == 302, response.content
    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert not _works(key)


def test_set_password_and_save_revokes_the_token(client, make_user):
    user = make_user("researcher")
    key = _issue(client, user.username)["token"]
    user.set_password(NEW_PASSWORD)
    user.save()
    assert not _works(key)
    assert not Token.objects.filter(user=user).exists()


def test_saves_that_keep_the_password_keep_the_token(client, make_user):
    user = make_user("researcher")
    key = _issue(client, user.username)["token"]
    user.first_name = "Анна"
    user.save()
    Client().post("/accounts/login/", {"username": user.username, "password": PASSWORD})  # writes last_login
    user.refresh_from_db()
    assert user.last_login is not None
    assert _works(key)


def test_revoke_from_the_profile_page(client, make_user):
    user = make_user("physician")
    key = _issue(client, user.username)["token"]
    client.force_login(user)
    assert client.get("/accounts/profile/token/revoke/").status_code == 405  # a link cannot revoke it
    response = client.post("/accounts/profile/token/revoke/", follow=True)
    assert response.redirect_chain == [("/accounts/profile/", 302)]
    page = response.content.decode()
    assert "Your API token was revoked: it no longer works." in page and "You have no API token." in page
    assert not _works(key)
    again = client.post("/accounts/profile/token/revoke/", follow=True).content.decode()
    assert "You had no API token." in again


def test_revoke_with_delete_on_the_api(client, make_user):
    user = make_user("researcher")
    key = _issue(client, user.username)["token"]
    assert Client().delete("/api/token/").status_code in (401, 403)  # nobody to revoke for
    response = Client().delete("/api/token/", HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 204
    assert not _works(key)
    assert Client().delete("/api/token/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 401


def test_an_administrator_sees_expiry_and_revokes_in_the_admin(client, make_user, settings):
    user = make_user("curator", username="holder")
    key = _issue(client, user.username)["token"]
    token = Token.objects.get(key=key)
    admin = Client()
    admin.force_login(make_user("admin"))
    listing = admin.get("/admin/authtoken/tokenproxy/").content.decode()
    assert "holder" in listing and "Expires" in listing
    assert timezone.localtime(token.created + settings.API_TOKEN_TTL).strftime("%Y") in listing

    response = admin.post(f"/admin/authtoken/tokenproxy/{user.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302, response.content
    assert not _works(key)


def test_renew_shows_the_new_key_once(client, make_user):
    user = make_user("researcher")
    old = _issue(client, user.username)["token"]
    client.force_login(user)
    response = client.post("/accounts/profile/token/new/")
    assert response.status_code == 200
    new = Token.objects.get(user=user).key
    assert new != old
    page = response.content.decode()
    assert f'data-testid="new-token">{new}<' in page and "it is not shown again" in page
    assert "no-store" in response["Cache-Control"]  # nor kept by the browser or a proxy
    assert _works(new) and not _works(old)
    later = client.get("/accounts/profile/").content.decode()
    assert new not in later and 'data-testid="new-token"' not in later


def test_profile_page_shows_when_the_token_was_issued_and_expires(client, make_user, settings):
    user = make_user("researcher")
    client.force_login(user)
    page = client.get("/accounts/profile/").content.decode()
    assert "You have no API token." in page and 'data-testid="token-revoke"' not in page
    key = _issue(Client(), user.username)["token"]
    token = Token.objects.get(key=key)
    page = client.get("/accounts/profile/").content.decode()
    assert (f"Your token was issued {_stamp(token.created)} and is valid until "
            f"{_stamp(token.created + settings.API_TOKEN_TTL)}.") in page
    assert key not in page  # the key is shown only when it is made
    assert 'data-testid="token-revoke"' in page and "Researcher" in page

    _backdate(key, settings.API_TOKEN_TTL + timedelta(minutes=1))
    token.refresh_from_db()
    page = client.get("/accounts/profile/").content.decode()
    assert f"expired on {_stamp(token.created + settings.API_TOKEN_TTL)}" in page


def test_profile_page_is_linked_from_the_header_and_needs_a_log_in(client, make_user):
    assert client.get("/accounts/profile/")["Location"].startswith("/accounts/login/")
    client.force_login(make_user("physician"))
    home = client.get("/", follow=True).content.decode()
    assert 'href="/accounts/profile/"' in home
