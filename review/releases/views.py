"""HTML views (htmx) for releases: the list with a create form and its preview, a release with its export
progress, downloads and diffs."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from generation.models import Note
from medsyn_site.access import permission_view
from medsyn_site.core.errors import StateConflict
from medsyn_site.core.forms import form_errors_text
from medsyn_site.core.progress import poll_response
from medsyn_site.core.sections import release_page_sections
from medsyn_site.core.storage import file_stream, releases_storage
from review.curation.forms import filter_form_bound
from review.curation.services import text_diff_html

from .forms import RELEASE_FORM_KEYS, ReleaseCompareForm, ReleaseCreateForm
from .models import Release
from .selectors import release_sample, releases_list, releases_other_than
from .services import do_create_release, do_retry_release_export, release_diff, release_file, release_preview

_manage_releases = permission_view("medsyn_site.manage_releases")
_download = permission_view("medsyn_site.download_releases")


def _message(error: ValidationError) -> str:
    return " ".join(error.messages)


@_download
def releases(request: HttpRequest) -> HttpResponse:
    can_create = request.user.has_perm("medsyn_site.manage_releases")
    filter_form = (filter_form_bound(request.POST, known_keys=RELEASE_FORM_KEYS) if request.method == "POST"
                   else filter_form_bound(request.GET))
    form = ReleaseCreateForm(request.POST or None)
    context = {"releases": releases_list(), "form": form,
               "filter_form": filter_form, "can_create": can_create}
    if request.method == "POST":
        if not can_create:
            raise PermissionDenied
        if not filter_form.is_valid():
            context["error"] = _("Fix the filter first: %(errors)s") % {"errors": form_errors_text(filter_form)}
            template = ("review/releases/_release_preview.html" if "preview" in request.POST
                        else "review/releases/releases.html")
            return render(request, template, context, status=200 if request.htmx else 400)
        filters = filter_form.filters()
        if "preview" in request.POST:  # before the form is complete: counts only
            context["preview"] = release_preview(filters=filters, include_real=bool(request.POST.get("include_real")))
            return render(request, "review/releases/_release_preview.html", context)
        if not form.is_valid():
            return render(request, "review/releases/releases.html", context, status=400)
        data = form.cleaned_data
        try:
            release = do_create_release(actor=request.user, name=data["name"], filters=filters,
                                        description=data["description"], licence=data["licence"],
                                        include_real=data["include_real"],
                                        real_data_licence=data["real_data_licence"])
        except ValidationError as error:
            context["error"] = _message(error)
            return render(request, "review/releases/releases.html", context, status=400)
        messages.success(request, _("Release %(release)s created; its export is running.") % {"release": release})
        return redirect("releases:release_detail", pk=release.pk)
    return render(request, "review/releases/releases.html", context)


def _detail_page(request: HttpRequest, release: Release, compare_form: ReleaseCompareForm | None = None,
                 status: int = 200) -> HttpResponse:
    return render(request, "review/releases/release_detail.html", {
        "release": release, "export": release.export, "others": releases_other_than(release),
        "sample": release_sample(release), "compare_form": compare_form,
        "sections": release_page_sections.render(request, release)}, status=status)


@_download
def release_detail(request: HttpRequest, pk: int) -> HttpResponse:
    release = get_object_or_404(releases_list(), pk=pk)
    if request.htmx:
        response = render(request, "review/releases/_release_export.html", {"release": release,
                                                                            "export": release.export})
        return poll_response(response, finished=release.export.finished)
    return _detail_page(request, release)


@_download
def release_compare(request: HttpRequest, pk: int) -> HttpResponse:
    """The release page's diff form (a plain GET form, no script): ?other=<id> redirects to the diff from that
    release to this one; an unknown or malformed release is a form error on the page."""
    release = get_object_or_404(releases_list(), pk=pk)
    form = ReleaseCompareForm(request.GET, release=release)
    if not form.is_valid():
        return _detail_page(request, release, compare_form=form, status=400)
    return redirect("releases:release_diff", pk=form.cleaned_data["other"].pk, other=release.pk)


@_manage_releases
@require_POST
def release_retry(request: HttpRequest, pk: int) -> HttpResponse:
    release = get_object_or_404(Release, pk=pk)
    try:
        do_retry_release_export(actor=request.user, release=release)
    except StateConflict as error:
        messages.error(request, _message(error))
    else:
        messages.success(request, _("The export of %(release)s is queued again.") % {"release": release})
    return redirect("releases:release_detail", pk=pk)


@_download
def release_download(request: HttpRequest, pk: int, path: str) -> FileResponse:
    return release_file_response(get_object_or_404(Release.objects.select_related("export"), pk=pk), path)


def release_file_response(release: Release, path: str) -> FileResponse:
    """One exported file as an attachment (pages and API), streamed from the releases storage (a folder or a
    bucket: core.storage.file_stream); 404 for anything the export did not list."""
    listed = release_file(release, path)
    if listed is None:
        raise Http404(_("%(path)r is not a file of the export of %(release)s.") % {"path": path, "release": release})
    response = FileResponse(file_stream(releases_storage(), listed.name), as_attachment=True,
                            filename=f"{release.name}-v{release.version}-{path.replace('/', '-')}")
    response["Content-Length"] = listed.bytes  # a bucket's stream has no size of its own
    return response


@_download
def release_diff_page(request: HttpRequest, pk: int, other: int) -> HttpResponse:
    older, newer = get_object_or_404(Release, pk=pk), get_object_or_404(Release, pk=other)
    diff = release_diff(older, newer)
    shown = 200
    notes = Note.objects.in_bulk(diff.added[:shown] + diff.removed[:shown])
    changed_ids = diff.changed[:shown]
    old_texts = dict(older.notes.filter(note_id__in=changed_ids).values_list("note_id", "text"))
    new_texts = dict(newer.notes.filter(note_id__in=changed_ids).values_list("note_id", "text"))
    return render(request, "review/releases/release_diff.html", {
        "older": older, "newer": newer, "diff": diff, "shown": shown,
        "added": [notes[i] for i in diff.added[:shown]], "removed": [notes[i] for i in diff.removed[:shown]],
        "changed": [(i, text_diff_html(old_texts[i], new_texts[i])) for i in changed_ids]})
