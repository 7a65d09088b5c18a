"""HTML views (htmx) for curation: the queue, a note with its actions, bulk actions with their preview, the scans."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from generation.models import Note
from medsyn_site.access import permission_view
from medsyn_site.core.audit import audit_history
from medsyn_site.core.forms import ascii_digits, form_errors_text
from medsyn_site.core.progress import poll_response

from .forms import (
    BULK_FORM_KEYS,
    CurationActionForm,
    CurationFilterForm,
    NoteEditForm,
    filter_form_bound,
    filter_form_filters,
)
from .models import ScanJob
from .scans import do_start_scan
from .selectors import TO_REVIEW, curation_notes, note_curation, release_blockers, scans_latest
from .services import (
    BULK_ACTIONS,
    EDITABLE_STATES,
    TRANSITIONS,
    TransitionError,
    bulk_preview,
    do_bulk_transition_notes,
    do_edit_note,
    do_override_note_flag,
    do_transition_note,
    text_diff_html,
    transition_check,
)

PAGE_SIZE = 50


_curate = permission_view("medsyn_site.curate_notes")


def _query(form: CurationFilterForm) -> str:
    return urlencode({k: v for k, v in form.data.items() if k in form.fields and v not in (None, "")})


def _page_number(raw: str | None) -> str | None:
    """The page asked for when written in ASCII digits, else None (the first page): int() reads '٣' as 3."""
    return raw if raw and ascii_digits(raw) else None


def _refusals(note: Note, state: str) -> dict[str, str]:
    """Why each action the note's state does not allow is refused, in words: shown when its key is pressed."""
    refusals = {}
    for transition in TRANSITIONS.values():
        if state not in transition.sources:
            try:
                transition_check(note, transition.action, reason="-")
            except TransitionError as error:
                refusals[transition.action] = str(error)
    return refusals


@_curate
def curation(request: HttpRequest) -> HttpResponse:
    data = request.GET.copy()
    if "state" not in data:
        data["state"] = TO_REVIEW
    form = filter_form_bound(data)
    notes = curation_notes(filters=filter_form_filters(form), sort=form.cleaned_data.get("sort") or "id")
    page = Paginator(notes, PAGE_SIZE).get_page(_page_number(request.GET.get("page")))
    context = {"form": form, "page": page, "rows": [(note, note_curation(note)) for note in page],
               "query": _query(form), "filter_error": form_errors_text(form)}
    if request.htmx and request.htmx.target == "queue":
        return render(request, "review/curation/_curation_queue.html", context)
    context.update(bulk_actions=[TRANSITIONS[a] for a in BULK_ACTIONS],
                   scans=scans_latest())
    return render(request, "review/curation/curation.html", context)


def _note_context(note: Note) -> dict:
    meta = note.metadata or {}
    curation = note_curation(note)
    versions = list(note.versions.select_related("edited_by"))
    texts = [v.text for v in versions] + [note.text]
    diffs = [(versions[i], text_diff_html(texts[i], texts[i + 1])) for i in range(len(versions))]
    example_id = meta.get("example_note_id")
    symptoms = meta.get("symptoms") or ""
    return {
        "symptoms": "; ".join(symptoms) if isinstance(symptoms, list) else str(symptoms),
        "variant": meta.get("prompt_variant") or meta.get("prior") or "",  # prior: notes imported from a MedSyn CSV
        "example_text": meta.get("example_text") or meta.get("anamnesis") or "",
        "note": note, "curation": curation, "meta": meta, "checks": meta.get("checks") or {},
        "actions": [t for t in TRANSITIONS.values() if curation.state in t.sources],
        "refusals": _refusals(note, curation.state),
        "editable": curation.state in EDITABLE_STATES, "diffs": diffs, "last_edit": versions[-1] if versions else None,
        "example_note": Note.objects.filter(pk=example_id).first() if isinstance(example_id, int) else None,
        "real_copy": curation.memorisation_real_note if curation.memorised else None,
        "release_blockers": release_blockers(note),
        "audit": audit_history(note, limit=50),
        "edit_form": NoteEditForm(initial={"text": note.text}),
    }


@_curate
def curation_note(request: HttpRequest, pk: int) -> HttpResponse:
    note = get_object_or_404(Note.objects.select_related("curation"), pk=pk, origin=Note.Origin.SYNTHETIC)
    template = "review/curation/_curation_note.html" if request.htmx else "review/curation/curation_note.html"
    return render(request, template, _note_context(note))


def _note_response(request: HttpRequest, note: Note, error: str = "") -> HttpResponse:
    if error:
        if not request.htmx:
            messages.error(request, error)
    elif not request.htmx:
        messages.success(request, _("Note %(id)s is now %(state)s.") % {
            "id": note.pk, "state": note_curation(note).get_state_display()})
    if request.htmx:
        context = _note_context(Note.objects.select_related("curation").get(pk=note.pk))
        context["error"] = error
        response = render(request, "review/curation/_curation_note.html", context)  # htmx swaps 2xx only
        response["HX-Trigger"] = "curation-changed"
        return response
    return redirect("curation:curation_note", pk=note.pk)


def _message(error: ValidationError) -> str:
    return " ".join(error.messages)


def _action_reason(request: HttpRequest) -> tuple[str, str]:
    """(reason, error) of a posted note action: the reason is checked as a form field (length, no NUL)."""
    form = CurationActionForm(request.POST)
    if not form.is_valid():
        return "", form_errors_text(form)
    return form.cleaned_data["reason"], ""


def _note_action(request: HttpRequest, pk: int, action: Callable[[Note], Note]) -> HttpResponse:
    """Run one curation action on a note and show the note again, with the refusal if the action was refused."""
    note = get_object_or_404(Note, pk=pk)
    try:
        note = action(note)
    except ValidationError as error:
        return _note_response(request, note, _message(error))
    return _note_response(request, note)


@_curate
@require_POST
def curation_transition(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    reason, error = _action_reason(request)
    if error:
        return _note_response(request, get_object_or_404(Note, pk=pk), error)
    return _note_action(request, pk, lambda note: do_transition_note(
        actor=request.user, note=note, action=action, reason=reason))


@_curate
@require_POST
def curation_edit(request: HttpRequest, pk: int) -> HttpResponse:
    form = NoteEditForm(request.POST)
    if not form.is_valid():
        return _note_response(request, get_object_or_404(Note, pk=pk), _("The edited text is empty."))
    return _note_action(request, pk, lambda note: do_edit_note(
        actor=request.user, note=note, text=form.cleaned_data["text"], reason=form.cleaned_data["reason"]))


@_curate
@require_POST
def curation_override(request: HttpRequest, pk: int) -> HttpResponse:
    reason, error = _action_reason(request)
    if error:
        return _note_response(request, get_object_or_404(Note, pk=pk), error)
    return _note_action(request, pk, lambda note: do_override_note_flag(
        actor=request.user, note=note, reason=reason))


@_curate
@require_POST
def curation_bulk(request: HttpRequest) -> HttpResponse:
    """Preview (no "expected" posted) or apply a bulk action over the queue's current filter."""
    form = filter_form_bound(request.POST, known_keys=BULK_FORM_KEYS)
    action = request.POST.get("action", "")
    reason, reason_error = _action_reason(request)
    context = {"action": action, "reason": reason, "form": form}
    if not form.is_valid():  # never act on a wider set than the filter the user wrote
        context["error"] = _("Fix the filter first: %(errors)s") % {"errors": form_errors_text(form)}
        return render(request, "review/curation/_bulk_preview.html", context)
    if reason_error:
        context["error"] = reason_error
        return render(request, "review/curation/_bulk_preview.html", context)
    notes = curation_notes(filters=form.filters())
    expected = request.POST.get("expected")
    if expected is not None and not ascii_digits(expected):  # int() reads '٣' as 3
        context["error"] = _("Bad count.")
        return render(request, "review/curation/_bulk_preview.html", context)
    try:
        if expected is not None:
            context["done"] = do_bulk_transition_notes(actor=request.user, notes=notes, action=action, reason=reason,
                                                       expected=int(expected))
        context["preview"] = bulk_preview(notes=notes, action=action)
        context["transition"] = TRANSITIONS[action]
    except ValidationError as error:
        context["error"] = _message(error)
    response = render(request, "review/curation/_bulk_preview.html", context)
    if context.get("done") is not None:
        response["HX-Trigger"] = "curation-changed"
    return response


@_curate
@require_POST
def scan_start(request: HttpRequest, kind: str) -> HttpResponse:
    try:
        scan = do_start_scan(actor=request.user, kind=kind)
    except ValidationError as error:
        raise Http404(_message(error)) from error
    if request.htmx:
        return render(request, "review/curation/_scan_status.html", {"scan": scan, "kind": kind})
    return redirect("curation:curation")


@_curate
def scan_status(request: HttpRequest, pk: int) -> HttpResponse:
    scan = get_object_or_404(ScanJob, pk=pk)
    response = render(request, "review/curation/_scan_status.html", {"scan": scan, "kind": scan.kind})
    return poll_response(response, finished=scan.finished)
