"""The interface language: the user's own choice, then the browser's, then English; the header's switcher."""

from __future__ import annotations

import pytest
from django.urls import reverse

from medsyn_site.models import Preference

pytestmark = pytest.mark.django_db


def _lang(response) -> str:
    html = response.content.decode()
    start = html.index('<html lang="') + len('<html lang="')
    return html[start:html.index('"', start)]


def test_the_browser_language_when_the_user_chose_none(client, make_user):
    assert _lang(client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="ru-RU,ru;q=0.9")) == "ru"
    assert _lang(client.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="de-DE")) == "en"  # not offered: English
    client.force_login(make_user("physician"))
    response = client.get(reverse("home"), HTTP_ACCEPT_LANGUAGE="ru")
    assert _lang(response) == "ru" and response["Content-Language"] == "ru"


@pytest.mark.parametrize(("chosen", "browser"), [("en", "ru"), ("ru", "en")])
def test_the_users_choice_beats_the_browser(client, make_user, chosen, browser):
    user = make_user("curator")
    Preference.objects.create(user=user, language=chosen)
    client.force_login(user)
    response = client.get(reverse("home"), HTTP_ACCEPT_LANGUAGE=browser)
    assert _lang(response) == chosen and response["Content-Language"] == chosen


def test_the_switcher_remembers_the_choice_for_the_user_and_goes_back(client, make_user):
    user = make_user("physician")
    client.force_login(user)
    response = client.post(reverse("language_set"), {"language": "ru", "next": reverse("profile")})
    assert response.status_code == 302 and response["Location"] == reverse("profile")
    assert Preference.objects.get(user=user).language == "ru"
    assert _lang(client.get(reverse("profile"), HTTP_ACCEPT_LANGUAGE="en")) == "ru"
    client.logout()  # a new session on another browser still speaks the user's language
    client.cookies.clear()
    client.force_login(user)
    assert _lang(client.get(reverse("profile"), HTTP_ACCEPT_LANGUAGE="en")) == "ru"


def test_the_switcher_refuses_an_unknown_language_and_a_foreign_next(client, make_user):
    user = make_user("physician")
    client.force_login(user)
    response = client.post(reverse("language_set"), {"language": "xx", "next": "https://evil.example/"})
    assert response["Location"] == "/" and not Preference.objects.filter(user=user).exists()
    anonymous = client.__class__()
    response = anonymous.post(reverse("language_set"), {"language": "ru", "next": reverse("login")})
    assert response.cookies["django_language"].value == "ru"
    assert _lang(anonymous.get(reverse("login"), HTTP_ACCEPT_LANGUAGE="en")) == "ru"


def test_every_page_offers_the_switcher(client, make_user):
    assert b'data-testid="language-switch"' in client.get(reverse("login")).content
    client.force_login(make_user("researcher"))
    page = client.get(reverse("home")).content.decode()
    assert 'data-language="ru"' in page and "Русский" in page and 'data-language="en"' in page
