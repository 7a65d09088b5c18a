from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from medsyn_site.access import permission_view
from medsyn_site.health import all_components


@login_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html")


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Machine-readable health: 200 when every component is up, 503 otherwise."""
    components = all_components()
    ok = all(c.ok for c in components)
    return JsonResponse(
        {"status": "ok" if ok else "degraded", "components": [c.as_dict() for c in components]},
        status=200 if ok else 503,
        json_dumps_params={"ensure_ascii": False},
    )


@never_cache
@permission_view("medsyn_site.view_status")
def status(request: HttpRequest) -> HttpResponse:
    components = all_components()
    context = {"components": components, "all_ok": all(c.ok for c in components)}
    if request.htmx:
        return render(request, "partials/status_components.html", context)
    return render(request, "status.html", context)
