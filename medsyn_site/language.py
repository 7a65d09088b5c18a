"""The interface language: the one a user chose (their Preference), else the browser's (Accept-Language, through
Django's LocaleMiddleware), else English. The switcher in the page header sets it for the user and in a cookie, so
the log-in page speaks it too."""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth import user_logged_in
from django.db import DatabaseError
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import translation
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from medsyn_site.models import Preference

SESSION_KEY = "medsyn_language"  # the user's choice, read once a session ("" for none)


def user_language(user) -> str:
    """The language a user chose, "" if none."""
    return Preference.objects.filter(user=user).values_list("language", flat=True).first() or ""


class UserLanguageMiddleware:
    """After authentication: a signed-in user's own choice replaces what LocaleMiddleware took from the browser."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            self._activate(request)
        except DatabaseError:
            pass  # sessions and users live in the database: while it is down, the browser's language (a 503 page)
        return self.get_response(request)

    @staticmethod
    def _activate(request: HttpRequest) -> None:
        user = getattr(request, "user", None)
        if user is not None and user.is_authenticated:
            if SESSION_KEY not in request.session:
                request.session[SESSION_KEY] = user_language(user)
            chosen = request.session[SESSION_KEY]
            if chosen in dict(settings.LANGUAGES):
                translation.activate(chosen)
                request.LANGUAGE_CODE = chosen


@receiver(user_logged_in)
def _language_on_login(sender, request: HttpRequest | None, user, **kwargs) -> None:
    """A fresh session reads the user's choice again (log-in cycles the session)."""
    if request is not None and hasattr(request, "session"):
        request.session.pop(SESSION_KEY, None)


@require_POST
def language_set(request: HttpRequest) -> HttpResponse:
    """The header's switcher: remember the language for the user (when signed in) and in a cookie, then go back."""
    language = request.POST.get("language", "")
    target = request.POST.get("next") or "/"
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        target = "/"
    response = HttpResponseRedirect(target)
    if language not in dict(settings.LANGUAGES):
        return response
    if request.user.is_authenticated:
        Preference.objects.update_or_create(user=request.user, defaults={"language": language})
        request.session[SESSION_KEY] = language
    response.set_cookie(settings.LANGUAGE_COOKIE_NAME, language, max_age=365 * 24 * 3600, samesite="Lax",
                        secure=request.is_secure(), httponly=True)
    return response
