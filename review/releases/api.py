"""Release API: create (with a preview), list, status with the export job, retry of a failed export, file download
and diff. Views validate input and call one service; errors map to responses in core.api (a release that cannot be
made: 400; a retry of an export that has not failed: 409)."""

from __future__ import annotations

from django.http import FileResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from medsyn_site.core.api import HasPerm
from review.curation.api import filters_from_request

from .forms import LICENCES, RELEASE_FILTER_KEYS
from .models import Release, ReleaseExport
from .selectors import releases_list
from .services import do_create_release, do_retry_release_export, release_diff, release_preview
from .views import release_file_response

CanDownload = HasPerm.of("download_releases")
CanManageReleases = HasPerm.of("manage_releases")


class ReleaseFileSerializer(serializers.Serializer):
    path = serializers.CharField(read_only=True, help_text="Relative to the release folder (files/<path>).")
    bytes = serializers.IntegerField(read_only=True)
    sha256 = serializers.CharField(read_only=True)


class ReleaseExportSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True)
    finished = serializers.BooleanField(read_only=True)
    files = ReleaseFileSerializer(many=True, read_only=True, help_text="Every file written, SHA256SUMS last.")
    stats = serializers.DictField(read_only=True, help_text="The statistics of the dataset card.")

    class Meta:
        model = ReleaseExport
        fields = ["status", "finished", "percent", "progress_done", "progress_total", "error", "files", "stats",
                  "created_at", "started_at", "finished_at"]
        read_only_fields = fields  # a response only: documented as always present


class ReleaseSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.get_username", default="", read_only=True)
    export = ReleaseExportSerializer(read_only=True)
    filters = serializers.DictField(read_only=True, help_text="The filter the release was made with.")

    class Meta:
        model = Release
        fields = ["id", "name", "version", "description", "licence", "include_real", "real_data_licence", "filters",
                  "note_count", "content_sha256", "created_by", "created_at", "export"]
        read_only_fields = fields


class ReleaseCreateSerializer(serializers.Serializer):
    name = serializers.SlugField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, default="")
    licence = serializers.ChoiceField(choices=[value for value, _ in LICENCES], required=False, default="mit")
    include_real = serializers.BooleanField(required=False, default=False)
    real_data_licence = serializers.CharField(required=False, allow_blank=True, default="")
    filters = serializers.DictField(required=False, default=dict,
                                    help_text="The queue's filters but `state` (a release takes approved notes); an "
                                              "unknown key is a 400.")
    preview = serializers.BooleanField(required=False, default=False,
                                       help_text="Only count what the release would hold (200, ReleasePreview).")


class ReleasePreviewSerializer(serializers.Serializer):
    synthetic = serializers.IntegerField(read_only=True, help_text="Releasable approved synthetic notes.")
    real = serializers.IntegerField(read_only=True, help_text="Real notes (0 unless include_real).")
    total = serializers.IntegerField(read_only=True)
    held_back = serializers.DictField(child=serializers.IntegerField(), read_only=True,
                                      help_text="Approved notes left out, by reason.")


class ReleasesView(APIView):
    """GET: every release. POST: create the next version of a release (or, with preview, count what it would hold)."""

    def get_permissions(self):
        return [CanManageReleases() if self.request.method == "POST" else CanDownload()]

    @extend_schema(responses=ReleaseSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(ReleaseSerializer(releases_list(), many=True).data)

    @extend_schema(request=ReleaseCreateSerializer, responses={201: ReleaseSerializer, 200: ReleasePreviewSerializer})
    def post(self, request: Request) -> Response:
        data = ReleaseCreateSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        filters = filters_from_request(values["filters"], known_keys=RELEASE_FILTER_KEYS)
        if values["preview"]:
            preview = release_preview(filters=filters, include_real=values["include_real"])
            return Response(ReleasePreviewSerializer(preview).data)
        release = do_create_release(actor=request.user, name=values["name"], filters=filters,
                                    description=values["description"], licence=values["licence"],
                                    include_real=values["include_real"], real_data_licence=values["real_data_licence"])
        return Response(ReleaseSerializer(releases_list().get(pk=release.pk)).data, status=status.HTTP_201_CREATED)


class ReleaseView(APIView):
    """One release with its export job (poll it until export.finished)."""

    permission_classes = [CanDownload]

    @extend_schema(responses=ReleaseSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ReleaseSerializer(get_object_or_404(releases_list(), pk=pk)).data)


class ReleaseExportRetryView(APIView):
    """Queue a failed export again (409 when it has not failed)."""

    permission_classes = [CanManageReleases]

    @extend_schema(request=None, responses={202: ReleaseExportSerializer})
    def post(self, request: Request, pk: int) -> Response:
        export = do_retry_release_export(actor=request.user, release=get_object_or_404(Release, pk=pk))
        return Response(ReleaseExportSerializer(export).data, status=status.HTTP_202_ACCEPTED)


class ReleaseDownloadView(APIView):
    """One exported file (paths as listed in export.files), as an attachment."""

    permission_classes = [CanDownload]

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request: Request, pk: int, path: str) -> FileResponse:
        return release_file_response(get_object_or_404(releases_list(), pk=pk), path)


class ReleaseDiffSerializer(serializers.Serializer):
    added = serializers.ListField(child=serializers.IntegerField())
    removed = serializers.ListField(child=serializers.IntegerField())
    changed = serializers.ListField(child=serializers.IntegerField())
    unchanged = serializers.IntegerField()


class ReleaseDiffView(APIView):
    """Note ids added, removed and edited from release pk to release other."""

    permission_classes = [CanDownload]

    @extend_schema(responses=ReleaseDiffSerializer)
    def get(self, request: Request, pk: int, other: int) -> Response:
        diff = release_diff(get_object_or_404(Release, pk=pk), get_object_or_404(Release, pk=other))
        return Response(ReleaseDiffSerializer(diff).data)
