"""HTTP hardening in one place: the Content-Security-Policy header, the client address behind trusted proxies, and
the answer to a locked-out log-in (django-axes)."""

from __future__ import annotations

import math
from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.response import TemplateResponse
from django.utils.translation import ngettext
from rest_framework.throttling import BaseThrottle


def csp_header_value(policy: dict[str, list[str]]) -> str:
    """settings.CONTENT_SECURITY_POLICY as a header value: "default-src 'self'; img-src 'self' data:"."""
    return "; ".join(" ".join([directive, *sources]) for directive, sources in policy.items())


class ContentSecurityPolicyMiddleware:
    """Adds settings.CONTENT_SECURITY_POLICY to every response that does not set its own (Django 5.2 has no CSP
    support of its own; Django 6 does, under SECURE_CSP). The header is sent as Content-Security-Policy-Report-Only
    when settings.CONTENT_SECURITY_POLICY_REPORT_ONLY is on."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        header = ("Content-Security-Policy-Report-Only" if settings.CONTENT_SECURITY_POLICY_REPORT_ONLY
                  else "Content-Security-Policy")
        if settings.CONTENT_SECURITY_POLICY and header not in response:
            response[header] = csp_header_value(settings.CONTENT_SECURITY_POLICY)
        return response


def client_address(request: HttpRequest) -> str | None:
    """The client's address as DRF's throttles see it: X-Forwarded-For is read only through the
    settings.TRUSTED_PROXY_COUNT proxies in front of the site (REST_FRAMEWORK["NUM_PROXIES"]), so the log-in
    lock-out and the API throttles count the same client, and a client cannot pick its own address."""
    return BaseThrottle().get_ident(request)


def lockout_response(request: HttpRequest, original_response: HttpResponse | None = None,
                     credentials: dict | None = None) -> HttpResponse:
    """django-axes' AXES_LOCKOUT_CALLABLE: too many failed log-ins for this username from this address.

    The API (POST /api/token/) answers 429 JSON with Retry-After; the log-in page is shown again, status 429, with
    a message saying how long the block lasts."""
    minutes = max(1, math.ceil(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    message = ngettext(
        "Too many failed log-in attempts for this account from your address. Try again in %(minutes)d minute.",
        "Too many failed log-in attempts for this account from your address. Try again in %(minutes)d minutes.",
        minutes,
    ) % {"minutes": minutes}
    retry_after = str(int(settings.AXES_COOLOFF_TIME.total_seconds()))
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": message}, status=429, headers={"Retry-After": retry_after})
    username = (credentials or {}).get("username") or request.POST.get("username", "")
    form = AuthenticationForm(request, initial={"username": username})
    context = {"form": form, "locked_out": message, "next": request.POST.get("next", "")}
    return TemplateResponse(request, "registration/login.html", context, status=429,
                            headers={"Retry-After": retry_after}).render()
