"""Curation API: the queue, note actions, bulk actions (preview, then apply with the previewed count) and scans.
Views validate input and call one service or selector; errors map to responses in core.api."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from generation.models import Note
from medsyn_site.core.api import HasPerm

from .forms import CurationFilterForm
from .models import NoteCuration, ScanJob
from .scans import do_start_scan
from .selectors import curation_notes, note_curation
from .services import (
    BULK_ACTIONS,
    TRANSITIONS,
    bulk_preview,
    do_bulk_transition_notes,
    do_edit_note,
    do_override_note_flag,
    do_transition_note,
)

CanCurate = HasPerm.of("curate_notes")


def filters_from_request(data) -> dict:
    """The queue filter from query parameters or a JSON object; invalid filters are a 400, never widened."""
    form = CurationFilterForm(data)
    if not form.is_valid():
        raise serializers.ValidationError(form.errors.get_json_data())
    return form.filters()


class NoteCurationSerializer(serializers.ModelSerializer):
    flagged = serializers.BooleanField(read_only=True)

    class Meta:
        model = NoteCuration
        fields = ["state", "reason", "flagged", "near_duplicate_of", "duplicate_jaccard", "duplicates_checked_version",
                  "memorised", "memorisation_real_note", "memorisation_ngram", "memorisation_score",
                  "memorisation_checked_version", "flag_override"]


class CurationNoteSerializer(serializers.ModelSerializer):
    curation = serializers.SerializerMethodField()
    recall = serializers.FloatField(read_only=True, allow_null=True)
    detectability = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Note
        fields = ["id", "icd_code", "text", "version", "metadata", "curation", "recall", "detectability"]

    @extend_schema_field(NoteCurationSerializer)
    def get_curation(self, note: Note) -> dict:
        """The review state and flags; a note never curated nor scanned is generated, unflagged and unchecked."""
        return NoteCurationSerializer(note_curation(note)).data


class CurationQueueView(ListAPIView):
    """Synthetic notes, filtered and sorted as in the curation queue (query parameters of CurationFilterForm)."""

    permission_classes = [CanCurate]
    serializer_class = CurationNoteSerializer

    def get_queryset(self):
        return curation_notes(filters=filters_from_request(self.request.query_params),
                              sort=self.request.query_params.get("sort", "id"))


class ActionSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=[*TRANSITIONS, "edit", "override"])
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
        if action == "edit":
            note = do_edit_note(actor=request.user, note=note, text=data.validated_data["text"], reason=reason)
        elif action == "override":
            note = do_override_note_flag(actor=request.user, note=note, reason=reason)
        else:
            note = do_transition_note(actor=request.user, note=note, action=action, reason=reason)
        return Response(CurationNoteSerializer(note).data)


class BulkSerializer(serializers.Serializer):
    action = serializers.ChoiceField(choices=BULK_ACTIONS)
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
        notes = curation_notes(filters=filters_from_request(data.validated_data["filters"]))
        action = data.validated_data["action"]
        if "expected" in data.validated_data:
            changed = do_bulk_transition_notes(actor=request.user, notes=notes, action=action,
                                               reason=data.validated_data["reason"],
                                               expected=data.validated_data["expected"])
            return Response({"changed": changed})
        preview = bulk_preview(notes=notes, action=action)
        return Response({"matching": preview.matching, "eligible": preview.eligible, "skipped": preview.skipped})


class ScanSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = ScanJob
        fields = ["id", "kind", "status", "progress_done", "progress_total", "percent", "flagged", "error",
                  "created_at", "started_at", "finished_at"]


class ScanStartView(APIView):
    permission_classes = [CanCurate]

    @extend_schema(request=None, responses=ScanSerializer)
    def post(self, request: Request, kind: str) -> Response:
        return Response(ScanSerializer(do_start_scan(actor=request.user, kind=kind)).data,
                        status=status.HTTP_202_ACCEPTED)


class ScanStatusView(APIView):
    permission_classes = [CanCurate]

    @extend_schema(responses=ScanSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ScanSerializer(get_object_or_404(ScanJob, pk=pk)).data)
