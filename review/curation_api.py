"""Curation and release API: the queue, note actions, bulk actions (preview, then apply with the previewed count),
scans, releases (create, list, status, download, diff). Views validate input and call one service or selector."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from generation.models import Note

from .api import HasPermission
from .curation import bulk_preview, do_bulk_transition_notes, do_edit_note, do_override_note_flag, do_transition_note
from .curation_views import release_file_response
from .forms import CurationFilterForm, ReleaseCreateForm
from .models import Release, ScanJob
from .releases import do_create_release, release_diff, release_preview
from .scans import do_start_scan
from .selectors import curation_notes


class CanCurate(HasPermission):
    perm = "medsyn_site.curate_notes"


class CanDownload(HasPermission):
    perm = "medsyn_site.download_releases"


class CanManageReleases(HasPermission):
    perm = "medsyn_site.manage_releases"


def _error(error: ValidationError | str, code: int = status.HTTP_409_CONFLICT) -> Response:
    detail = " ".join(error.messages) if isinstance(error, ValidationError) else error
    return Response({"detail": detail}, status=code)


def _filters(data) -> dict:
    form = CurationFilterForm(data)
    if not form.is_valid():
        raise serializers.ValidationError(form.errors.get_json_data())
    return form.filters()


class CurationNoteSerializer(serializers.ModelSerializer):
    flagged = serializers.BooleanField(read_only=True)
    recall = serializers.FloatField(read_only=True, allow_null=True)
    detectability = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Note
        fields = ["id", "icd_code", "text", "version", "review_state", "review_reason", "metadata", "flagged",
                  "near_duplicate_of", "duplicate_jaccard", "memorised", "memorisation_real_note",
                  "memorisation_ngram", "memorisation_score", "memorisation_checked_version", "flag_override",
                  "recall", "detectability"]


class CurationQueueView(ListAPIView):
    """Synthetic notes, filtered and sorted as in the curation queue (query parameters of CurationFilterForm)."""

    permission_classes = [CanCurate]
    serializer_class = CurationNoteSerializer

    def get_queryset(self):
        return curation_notes(filters=_filters(self.request.query_params),
                              sort=self.request.query_params.get("sort", "id"))


class ActionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["submit", "approve", "reject", "request_edit", "reopen", "edit",
                                              "override"])
    reason = serializers.CharField(required=False, allow_blank=True, default="")
    text = serializers.CharField(required=False, allow_blank=True, default="")


class NoteActionView(APIView):
    """One curation action on one note: a transition, an edit (new version) or a flag override."""

    permission_classes = [CanCurate]

    @extend_schema(request=ActionSerializer, responses=CurationNoteSerializer)
    def post(self, request: Request, pk: int) -> Response:
        note = get_object_or_404(Note, pk=pk)
        data = ActionSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        action, reason = data.validated_data["action"], data.validated_data["reason"]
        try:
            if action == "edit":
                note = do_edit_note(actor=request.user, note=note, text=data.validated_data["text"], reason=reason)
            elif action == "override":
                note = do_override_note_flag(actor=request.user, note=note, reason=reason)
            else:
                note = do_transition_note(actor=request.user, note=note, action=action, reason=reason)
        except ValidationError as error:
            return _error(error)
        return Response(CurationNoteSerializer(note).data)


class BulkSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=["submit", "approve", "reject", "reopen"])
    reason = serializers.CharField(required=False, allow_blank=True, default="")
    filters = serializers.DictField(required=False, default=dict)
    expected = serializers.IntegerField(required=False, min_value=0,
                                        help_text="The eligible count of the preview; omit it to get the preview.")


class BulkView(APIView):
    """Without "expected": the preview (how many notes the action would change). With it: apply, if it still holds."""

    permission_classes = [CanCurate]

    @extend_schema(request=BulkSerializer)
    def post(self, request: Request) -> Response:
        data = BulkSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        notes = curation_notes(filters=_filters(data.validated_data["filters"]))
        action = data.validated_data["action"]
        try:
            if "expected" in data.validated_data:
                changed = do_bulk_transition_notes(actor=request.user, notes=notes, action=action,
                                                   reason=data.validated_data["reason"],
                                                   expected=data.validated_data["expected"])
                return Response({"changed": changed})
            preview = bulk_preview(notes=notes, action=action)
        except ValidationError as error:
            return _error(error)
        return Response({"matching": preview.matching, "eligible": preview.eligible, "skipped": preview.skipped})


class ScanSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = ScanJob
        fields = ["id", "kind", "status", "total", "processed", "percent", "flagged", "error", "created_at",
                  "finished_at"]


class ScanStartView(APIView):
    permission_classes = [CanCurate]

    @extend_schema(request=None, responses=ScanSerializer)
    def post(self, request: Request, kind: str) -> Response:
        if kind not in ScanJob.Kind.values:
            return _error(f"Unknown scan {kind!r}; expected one of {', '.join(ScanJob.Kind.values)}.",
                          status.HTTP_400_BAD_REQUEST)
        return Response(ScanSerializer(do_start_scan(actor=request.user, kind=kind)).data,
                        status=status.HTTP_202_ACCEPTED)


class ScanStatusView(APIView):
    permission_classes = [CanCurate]

    @extend_schema(responses=ScanSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ScanSerializer(get_object_or_404(ScanJob, pk=pk)).data)


class ReleaseSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.get_username", default="", read_only=True)

    class Meta:
        model = Release
        fields = ["id", "name", "version", "description", "licence", "include_real", "real_data_licence", "filters",
                  "note_count", "content_sha256", "created_by", "created_at", "export_status", "export_progress",
                  "export_error", "export_files", "export_stats", "exported_at"]


class ReleaseCreateSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    licence = serializers.CharField(required=False, default="mit")
    include_real = serializers.BooleanField(required=False, default=False)
    real_data_licence = serializers.CharField(required=False, allow_blank=True, default="")
    filters = serializers.DictField(required=False, default=dict)
    preview = serializers.BooleanField(required=False, default=False)


class ReleasesView(APIView):
    """GET: every release. POST: create the next version of a release (or, with preview, count what it would hold)."""

    def get_permissions(self):
        return [CanManageReleases() if self.request.method == "POST" else CanDownload()]

    @extend_schema(responses=ReleaseSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(ReleaseSerializer(Release.objects.select_related("created_by"), many=True).data)

    @extend_schema(request=ReleaseCreateSerializer, responses=ReleaseSerializer)
    def post(self, request: Request) -> Response:
        data = ReleaseCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        form = ReleaseCreateForm({**values, "include_real": values["include_real"] or ""})
        if not form.is_valid():
            return Response(form.errors.get_json_data(), status=status.HTTP_400_BAD_REQUEST)
        filters = _filters(values["filters"])
        if values["preview"]:
            preview = release_preview(filters=filters, include_real=values["include_real"])
            return Response({"synthetic": preview.synthetic, "real": preview.real, "total": preview.total,
                             "held_back": preview.held_back})
        try:
            release = do_create_release(actor=request.user, name=values["name"], filters=filters,
                                        description=values["description"], licence=form.cleaned_data["licence"],
                                        include_real=values["include_real"],
                                        real_data_licence=values["real_data_licence"])
        except ValidationError as error:
            return _error(error, status.HTTP_400_BAD_REQUEST)
        return Response(ReleaseSerializer(release).data, status=status.HTTP_201_CREATED)


class ReleaseView(APIView):
    permission_classes = [CanDownload]

    @extend_schema(responses=ReleaseSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ReleaseSerializer(get_object_or_404(Release, pk=pk)).data)


class ReleaseDownloadView(APIView):
    """One exported file (paths as listed in export_files), as an attachment."""

    permission_classes = [CanDownload]

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request: Request, pk: int, path: str) -> FileResponse:
        return release_file_response(get_object_or_404(Release, pk=pk), path)


class ReleaseDiffView(APIView):
    permission_classes = [CanDownload]

    def get(self, request: Request, pk: int, other: int) -> Response:
        diff = release_diff(get_object_or_404(Release, pk=pk), get_object_or_404(Release, pk=other))
        return Response({"added": diff.added, "removed": diff.removed, "changed": diff.changed,
                         "unchanged": diff.unchanged})
