from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from medsyn_site.access import permission_view
from medsyn_site.health import all_components, supervisor_report


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


def viewer_is_staff(request: HttpRequest) -> bool:
    """Whether the request comes from staff; False when the database (where sessions live) cannot tell."""
    try:
        return bool(request.user.is_staff)
    except (OperationalError, InterfaceError):
        return False


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Machine-readable health: 200 when every component is up, 503 otherwise.

    Anyone gets the overall status and up/down per component; only staff get latencies and details (URLs, worker
    host names, paths, error texts), which tell an attacker where things are.
    """
    components = all_components()
    ok = all(c.ok for c in components)
    detailed = viewer_is_staff(request)
    return JsonResponse(
        {
            "status": "ok" if ok else "degraded",
            "components": [c.as_dict() if detailed else c.as_public_dict() for c in components],
        },
        status=200 if ok else 503,
        json_dumps_params={"ensure_ascii": False},
    )


@never_cache
@permission_view("medsyn_site.view_status")
def status(request: HttpRequest) -> HttpResponse:
    components = all_components()
    context = {
        "components": components,
        "all_ok": all(c.ok for c in components),
        "supervisor": supervisor_report(),
        "show_process_details": request.user.is_staff,
    }
    if request.htmx:
        return render(request, "partials/status_components.html", context)
    return render(request, "status.html", context)
