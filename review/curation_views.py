"""HTML views (htmx) for curation and releases: the queue, a note with its actions, bulk actions with their
preview, the scans, releases with their export progress, downloads and diffs."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseStopPolling

from generation.models import Note
from medsyn_site.access import permission_view

from .curation import (
    BULK_ACTIONS,
    EDITABLE_STATES,
    TRANSITIONS,
    bulk_preview,
    do_bulk_transition_notes,
    do_edit_note,
    do_override_note_flag,
    do_transition_note,
    text_diff_html,
)
from .forms import CurationFilterForm, NoteEditForm, ReleaseCreateForm
from .models import AuditRecord, Release, ScanJob
from .releases import (
    ReleaseError,
    do_create_release,
    do_retry_release_export,
    release_diff,
    release_file_path,
    release_preview,
)
from .scans import do_start_scan
from .selectors import curation_notes

PAGE_SIZE = 50


_curate = permission_view("medsyn_site.curate_notes")
_manage_releases = permission_view("medsyn_site.manage_releases")
_download = permission_view("medsyn_site.download_releases")


def _filter_form(data) -> CurationFilterForm:
    form = CurationFilterForm(data)
    form.is_valid()  # an invalid field is shown on the form and ignored by the filter
    return form


def _filters(form: CurationFilterForm) -> dict:
    return form.filters() if form.is_valid() else {k: v for k, v in form.cleaned_data.items()
                                                   if k in form.FILTER_KEYS and v not in (None, "")}


def _query(form: CurationFilterForm) -> str:
    return urlencode({k: v for k, v in form.data.items() if k in form.fields and v not in (None, "")})


@_curate
def curation(request: HttpRequest) -> HttpResponse:
    data = request.GET.copy()
    if "state" not in data:
        data["state"] = "pending_review"
    form = _filter_form(data)
    notes = curation_notes(filters=_filters(form), sort=form.cleaned_data.get("sort") or "id")
    page = Paginator(notes, PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "query": _query(form)}
    if request.htmx and request.htmx.target == "queue":
        return render(request, "review/_curation_queue.html", context)
    context.update(bulk_actions=[TRANSITIONS[a] for a in BULK_ACTIONS],
                   scans={kind: ScanJob.objects.filter(kind=kind).first() for kind in ScanJob.Kind.values})
    return render(request, "review/curation.html", context)


def _note_context(note: Note) -> dict:
    meta = note.metadata or {}
    versions = list(note.versions.all())
    texts = [v.text for v in versions] + [note.text]
    diffs = [(versions[i], text_diff_html(texts[i], texts[i + 1])) for i in range(len(versions))]
    example_id = meta.get("example_note_id")
    symptoms = meta.get("symptoms") or ""
    return {
        "symptoms": "; ".join(symptoms) if isinstance(symptoms, list) else str(symptoms),
        "variant": meta.get("prompt_variant") or meta.get("prior") or "",  # prior: notes imported from a MedSyn CSV
        "example_text": meta.get("example_text") or meta.get("anamnesis") or "",
        "note": note, "meta": meta, "checks": meta.get("checks") or {},
        "actions": [t for t in TRANSITIONS.values() if note.review_state in t.sources],
        "editable": note.review_state in EDITABLE_STATES, "diffs": diffs,
        "example_note": Note.objects.filter(pk=example_id).first() if isinstance(example_id, int) else None,
        "real_copy": note.memorisation_real_note if note.memorised else None,
        "audit": AuditRecord.objects.filter(object_type="Note", object_id=str(note.pk)).select_related("actor")[:50],
        "edit_form": NoteEditForm(initial={"text": note.text}),
    }


@_curate
def curation_note(request: HttpRequest, pk: int) -> HttpResponse:
    note = get_object_or_404(Note, pk=pk, origin=Note.Origin.SYNTHETIC)
    template = "review/_curation_note.html" if request.htmx else "review/curation_note.html"
    return render(request, template, _note_context(note))


def _note_response(request: HttpRequest, note: Note, error: str = "") -> HttpResponse:
    if error:
        if not request.htmx:
            messages.error(request, error)
    elif not request.htmx:
        messages.success(request, _("Note %(id)s is now %(state)s.") % {"id": note.pk,
                                                                        "state": note.get_review_state_display()})
    if request.htmx:
        context = _note_context(Note.objects.get(pk=note.pk))
        context["error"] = error
        response = render(request, "review/_curation_note.html", context)  # htmx swaps 2xx only
        response["HX-Trigger"] = "curation-changed"
        return response
    return redirect("review:curation_note", pk=note.pk)


def _message(error: ValidationError) -> str:
    return " ".join(error.messages)


@_curate
@require_POST
def curation_transition(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    note = get_object_or_404(Note, pk=pk)
    try:
        note = do_transition_note(actor=request.user, note=note, action=action, reason=request.POST.get("reason", ""))
    except ValidationError as error:
        return _note_response(request, note, _message(error))
    return _note_response(request, note)


@_curate
@require_POST
def curation_edit(request: HttpRequest, pk: int) -> HttpResponse:
    note = get_object_or_404(Note, pk=pk)
    form = NoteEditForm(request.POST)
    if not form.is_valid():
        return _note_response(request, note, _("The edited text is empty."))
    try:
        note = do_edit_note(actor=request.user, note=note, text=form.cleaned_data["text"],
                            reason=form.cleaned_data["reason"])
    except ValidationError as error:
        return _note_response(request, note, _message(error))
    return _note_response(request, note)


@_curate
@require_POST
def curation_override(request: HttpRequest, pk: int) -> HttpResponse:
    note = get_object_or_404(Note, pk=pk)
    try:
        note = do_override_note_flag(actor=request.user, note=note, reason=request.POST.get("reason", ""))
    except ValidationError as error:
        return _note_response(request, note, _message(error))
    return _note_response(request, note)


@_curate
@require_POST
def curation_bulk(request: HttpRequest) -> HttpResponse:
    """Preview (no "expected" posted) or apply a bulk action over the queue's current filter."""
    form = _filter_form(request.POST)
    action, reason = request.POST.get("action", ""), request.POST.get("reason", "")
    context = {"action": action, "reason": reason, "form": form}
    if not form.is_valid():  # never act on a wider set than the filter the user wrote
        context["error"] = _("Fix the filter first: %(errors)s") % {"errors": form.errors.as_text()}
        return render(request, "review/_bulk_preview.html", context)
    notes = curation_notes(filters=form.filters())
    try:
        if "expected" in request.POST:
            context["done"] = do_bulk_transition_notes(actor=request.user, notes=notes, action=action, reason=reason,
                                                       expected=int(request.POST["expected"] or -1))
        context["preview"] = bulk_preview(notes=notes, action=action)
        context["transition"] = TRANSITIONS[action]
    except (ValidationError, ValueError) as error:
        context["error"] = _message(error) if isinstance(error, ValidationError) else _("Bad count.")
    response = render(request, "review/_bulk_preview.html", context)
    if context.get("done") is not None:
        response["HX-Trigger"] = "curation-changed"
    return response


@_curate
@require_POST
def scan_start(request: HttpRequest, kind: str) -> HttpResponse:
    try:
        scan = do_start_scan(actor=request.user, kind=kind)
    except ValueError as error:
        raise Http404(str(error)) from error
    if request.htmx:
        return render(request, "review/_scan_status.html", {"scan": scan, "kind": kind})
    return redirect("review:curation")


@_curate
def scan_status(request: HttpRequest, pk: int) -> HttpResponse:
    scan = get_object_or_404(ScanJob, pk=pk)
    response = render(request, "review/_scan_status.html", {"scan": scan, "kind": scan.kind})
    return HttpResponseStopPolling(response.content) if scan.finished else response


@_download
def releases(request: HttpRequest) -> HttpResponse:
    can_create = request.user.has_perm("medsyn_site.manage_releases")
    filter_form = _filter_form(request.POST if request.method == "POST" else request.GET)
    form = ReleaseCreateForm(request.POST or None)
    context = {"releases": Release.objects.select_related("created_by"), "form": form, "filter_form": filter_form,
               "can_create": can_create}
    if request.method == "POST":
        if not can_create:
            raise PermissionDenied
        if not filter_form.is_valid():
            context["error"] = _("Fix the filter first: %(errors)s") % {"errors": filter_form.errors.as_text()}
            template = "review/_release_preview.html" if "preview" in request.POST else "review/releases.html"
            return render(request, template, context, status=200 if request.htmx else 400)
        filters = filter_form.filters()
        if "preview" in request.POST:  # before the form is complete: counts only
            context["preview"] = release_preview(filters=filters, include_real=bool(request.POST.get("include_real")))
            return render(request, "review/_release_preview.html", context)
        if not form.is_valid():
            return render(request, "review/releases.html", context, status=400)
        data = form.cleaned_data
        try:
            release = do_create_release(actor=request.user, name=data["name"], filters=filters,
                                        description=data["description"], licence=data["licence"],
                                        include_real=data["include_real"],
                                        real_data_licence=data["real_data_licence"])
        except ValidationError as error:
            context["error"] = _message(error)
            return render(request, "review/releases.html", context, status=400)
        messages.success(request, _("Release %(release)s created; its export is running.") % {"release": release})
        return redirect("review:release_detail", pk=release.pk)
    return render(request, "review/releases.html", context)


@_download
def release_detail(request: HttpRequest, pk: int) -> HttpResponse:
    release = get_object_or_404(Release.objects.select_related("created_by"), pk=pk)
    if request.htmx:
        response = render(request, "review/_release_export.html", {"release": release})
        return HttpResponseStopPolling(response.content) if release.export_finished else response
    others = Release.objects.exclude(pk=pk)
    return render(request, "review/release_detail.html", {"release": release, "others": others,
                                                         "sample": release.notes.order_by("idx")[:20]})


@_manage_releases
@require_POST
def release_retry(request: HttpRequest, pk: int) -> HttpResponse:
    release = get_object_or_404(Release, pk=pk)
    try:
        do_retry_release_export(actor=request.user, release=release)
    except ReleaseError as error:
        messages.error(request, _message(error))
    return redirect("review:release_detail", pk=pk)


@_download
def release_download(request: HttpRequest, pk: int, path: str) -> FileResponse:
    return release_file_response(get_object_or_404(Release, pk=pk), path)


def release_file_response(release: Release, path: str) -> FileResponse:
    """One exported file as an attachment (pages and API); 404 for anything the export did not list."""
    try:
        file_path = release_file_path(release, path)
    except ReleaseError as error:
        raise Http404(_message(error)) from error
    return FileResponse(file_path.open("rb"), as_attachment=True,
                        filename=f"{release.name}-v{release.version}-{path.replace('/', '-')}")


@_download
def release_diff_page(request: HttpRequest, pk: int, other: int) -> HttpResponse:
    older, newer = get_object_or_404(Release, pk=pk), get_object_or_404(Release, pk=other)
    diff = release_diff(older, newer)
    shown = 200
    notes = Note.objects.in_bulk(diff.added[:shown] + diff.removed[:shown])
    changed_ids = diff.changed[:shown]
    old_texts = dict(older.notes.filter(note_id__in=changed_ids).values_list("note_id", "text"))
    new_texts = dict(newer.notes.filter(note_id__in=changed_ids).values_list("note_id", "text"))
    return render(request, "review/release_diff.html", {
        "older": older, "newer": newer, "diff": diff, "shown": shown,
        "added": [notes[i] for i in diff.added[:shown]], "removed": [notes[i] for i in diff.removed[:shown]],
        "changed": [(i, text_diff_html(old_texts[i], new_texts[i])) for i in changed_ids]})
