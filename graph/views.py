"""Browse pages (htmx): search as you type, code, symptom, neighbourhood, statistics; the upload page."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods

from medsyn_site.access import permission_view
from medsyn_site.core.progress import poll_response
from medsyn_site.core.textfile import CONTROL

from . import selectors
from .forms import ImportUploadForm
from .models import ImportJob
from .services import do_start_graph_import
from .store import get_graph_store

BROWSE = "medsyn_site.browse_graph"
MANAGE = "medsyn_site.manage_graph"


_browse = permission_view(BROWSE)
_manage = permission_view(MANAGE)


@_browse
def search(request: HttpRequest) -> HttpResponse:
    """Search as you type. A query that cannot be searched for (a control character, too long) gets the page with
    the reason: status 400, but 200 for htmx, which would not show a 4xx answer while the person types."""
    query = request.GET.get("q", "")
    try:
        hits = selectors.graph_search(get_graph_store(), query) if query.strip() else []
        error = ""
    except ValidationError as invalid:
        hits, error = [], " ".join(invalid.messages)
        query = CONTROL.sub("", query)  # shown back in the search box
    context = {"query": query, "hits": hits, "error": error}
    if request.htmx:
        return render(request, "graph/_search_results.html", context)
    return render(request, "graph/search.html", context, status=400 if error else 200)


def _url_for(name: str) -> Callable[[str], str]:
    """reverse() once, then fill keys in: a page lists up to hundreds of links and {% url %} costs."""
    template = reverse(name, kwargs={"key": "__KEY__"})
    return lambda key: template.replace("__KEY__", quote(key, safe=""))


def _link(rows: list[dict], code_url: Callable[[str], str], symptom_url: Callable[[str], str]) -> None:
    for row in rows:
        row["url"] = symptom_url(row["key"]) if row.get("label", "Symptom") == "Symptom" else code_url(row["key"])


@_browse
def code(request: HttpRequest, key: str) -> HttpResponse:
    detail = selectors.code_detail(get_graph_store(), key)
    if detail is None:
        raise Http404("no such code in the graph")
    code_url, symptom_url = _url_for("graph:code"), _url_for("graph:symptom")
    for rows in (detail.breadcrumbs, detail.children, detail.related):
        _link(rows, code_url, code_url)
    _link(detail.symptoms, code_url, symptom_url)
    target = selectors.generation_target(get_graph_store(), detail)
    context = {"code": detail, "generate_url": target.url, "generate_why": target.why_not,
               "category": target.category if target.category != detail.key else None,
               "category_url": reverse("graph:code", args=[target.category]) if target.category else None}
    return render(request, "graph/code.html", context)


@_browse
def symptom(request: HttpRequest, key: str) -> HttpResponse:
    detail = selectors.symptom_detail(get_graph_store(), key)
    if detail is None:
        raise Http404("no such symptom in the graph")
    _link(detail["diseases"], _url_for("graph:code"), _url_for("graph:code"))
    return render(request, "graph/symptom.html", {"symptom": detail})


@_browse
def neighbourhood(request: HttpRequest, label: str, key: str) -> HttpResponse:
    data = selectors.node_neighbourhood(get_graph_store(), label, key)
    if data is None:
        raise Http404("no such node in the graph")
    return render(request, "graph/neighbourhood.html", {"label": label, "key": key, "data": data})


@_browse
def stats(request: HttpRequest) -> HttpResponse:
    return render(request, "graph/stats.html", selectors.graph_stats(get_graph_store()))


@_manage
@require_http_methods(["GET", "POST"])
def import_upload(request: HttpRequest) -> HttpResponse:
    form = ImportUploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        job = do_start_graph_import(actor=request.user, kind=form.cleaned_data["kind"],
                                    upload=form.cleaned_data["upload"])
        return redirect("graph:import_job", pk=job.pk)
    jobs = selectors.import_jobs_recent()
    return render(request, "graph/import_upload.html", {"form": form, "jobs": jobs})


@_manage
def import_job(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(ImportJob, pk=pk)
    if request.htmx:
        return poll_response(render(request, "graph/_import_job_status.html", {"job": job}), finished=job.finished)
    return render(request, "graph/import_job.html", {"job": job})
