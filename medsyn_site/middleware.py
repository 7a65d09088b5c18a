"""A component that is down gives a clear 503 page, never a 500.

The page names the component in plain words and nothing else: exception texts carry socket paths, hosts and ports,
so they go to the log only; staff see the details on the status page.
"""

from __future__ import annotations

import logging

from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template.loader import render_to_string
from django.utils.translation import gettext as _

from graph.store import GraphUnavailable
from medsyn_site.core.errors import BrokerUnavailable
from medsyn_site.core.storage import StorageUnavailable

logger = logging.getLogger("medsyn.web")


def component_down(exception: Exception) -> tuple[str, str] | None:
    """(component, message for people) when exception means a component is down, else None."""
    if isinstance(exception, GraphUnavailable):
        return "graph", _("The graph database is unavailable.")
    if isinstance(exception, OperationalError | InterfaceError):
        return "database", _("The database is unavailable.")
    if isinstance(exception, BrokerUnavailable):
        return "broker", _("The task queue (broker) is unavailable, so no background job can start.")
    if isinstance(exception, StorageUnavailable):
        return "storage", _("The shared storage of releases, adapters and uploads is unavailable.")
    return None


class ServiceUnavailableMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        down = component_down(exception)
        if down is None:
            return None
        component, message = down
        logger.error("component unavailable",
                     extra={"component": component, "error": str(exception), "path": request.path})
        if request.path.startswith("/api/") or request.path == "/healthz":
            return JsonResponse({"detail": message, "component": component}, status=503)
        # Rendered without a request context: the database may be what is down, so no session or user.
        html = render_to_string("unavailable.html", {"message": message, "component": component})
        return HttpResponse(html, status=503)
