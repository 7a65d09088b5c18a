"""A component that is down gives a clear 503 page, never a 500."""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from graph.store import GraphUnavailable

logger = logging.getLogger("medsyn.web")


class ServiceUnavailableMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, GraphUnavailable):
            return self._unavailable(request, "graph", _("The graph database is unavailable."), exception)
        if isinstance(exception, OperationalError | InterfaceError):
            return self._unavailable(request, "database", _("The database is unavailable."), exception)
        return None

    def _unavailable(self, request: HttpRequest, component: str, message: str, error: Exception) -> HttpResponse:
        logger.error("component unavailable", extra={"component": component, "error": str(error), "path": request.path})
        if request.path.startswith("/api/") or request.path == "/healthz":
            return JsonResponse({"detail": message, "component": component}, status=503)
        # Rendered without a request context: the database may be what is down, so no session or user.
        html = render_to_string("unavailable.html", {"message": message, "component": component, "error": str(error)})
        return HttpResponse(html, status=503)
