"""Release API: create (with a preview), list, status, file download and diff. Views validate input and call one
service; errors map to responses in core.api."""

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

from .forms import ReleaseCreateForm
from .models import Release
from .services import do_create_release, release_diff, release_preview
from .views import release_file_response

CanDownload = HasPerm.of("download_releases")
CanManageReleases = HasPerm.of("manage_releases")


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
        filters = filters_from_request(values["filters"])
        if values["preview"]:
            preview = release_preview(filters=filters, include_real=values["include_real"])
            return Response({"synthetic": preview.synthetic, "real": preview.real, "total": preview.total,
                             "held_back": preview.held_back})
        release = do_create_release(actor=request.user, name=values["name"], filters=filters,
                                    description=values["description"], licence=form.cleaned_data["licence"],
                                    include_real=values["include_real"], real_data_licence=values["real_data_licence"])
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
