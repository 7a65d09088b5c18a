"""Curation API: the queue, note actions, bulk actions (preview, then apply with the previewed count) and scans.
Views validate input and call one service or selector; errors map to responses in core.api."""

from __future__ import annotations

from collections.abc import Iterable

from django.shortcuts import get_object_or_404
from django.utils.translation import gettext as _
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from generation.models import Note
from medsyn_site.core.api import HasPerm
from medsyn_site.core.forms import ascii_digits

from .forms import BULK_FILTER_KEYS, CurationFilterForm
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


def filters_from_request(data, *, known_keys: Iterable[str] | None = None) -> dict:
    """The queue filter from query parameters (known_keys None: the queue's list) or from the JSON `filters` object
    of an action (known_keys: the keys it may hold, any other is refused by name); invalid filters are a 400, never
    widened. The errors of a `filters` object are under "filters"."""
    form = CurationFilterForm(data, known_keys=known_keys)
    if not form.is_valid():
        errors = form.errors.get_json_data()
        raise serializers.ValidationError(errors if known_keys is None else {"filters": errors})
    return form.filters()


class NoteCurationSerializer(serializers.ModelSerializer):
    flagged = serializers.BooleanField(read_only=True)

    class Meta:
        model = NoteCuration
        fields = ["state", "reason", "flagged", "near_duplicate_of", "duplicate_jaccard", "duplicates_checked_version",
                  "memorised", "memorisation_real_note", "memorisation_ngram", "memorisation_score",
                  "memorisation_checked_version", "flag_override"]
        read_only_fields = fields  # a response only: documented as always present


class CurationNoteSerializer(serializers.ModelSerializer):
    curation = serializers.SerializerMethodField()
    recall = serializers.FloatField(read_only=True, allow_null=True)
    detectability = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = Note
        fields = ["id", "icd_code", "text", "version", "metadata", "curation", "recall", "detectability"]
        read_only_fields = fields

    @extend_schema_field(NoteCurationSerializer)
    def get_curation(self, note: Note) -> dict:
        """The review state and flags; a note never curated nor scanned is generated, unflagged and unchecked."""
        return NoteCurationSerializer(note_curation(note)).data


class QueuePagination(PageNumberPagination):
    """Page-number pagination whose page is a positive number in ASCII digits (or "last"), else a 400: int() would
    read '٣' as page 3 and DRF answers "²" with a 404 as if the page were only out of range."""

    def get_page_number(self, request: Request, paginator) -> str:
        number = str(super().get_page_number(request, paginator))
        if number not in self.last_page_strings and not ascii_digits(number):
            raise serializers.ValidationError({self.page_query_param: [_("A page is a number in digits 0-9.")]})
        return number


class CurationQueueView(ListAPIView):
    """Synthetic notes, filtered and sorted as in the curation queue (query parameters of CurationFilterForm)."""

    permission_classes = [CanCurate]
    serializer_class = CurationNoteSerializer
    pagination_class = QueuePagination

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
    filters = serializers.DictField(required=False, default=dict,
                                    help_text="The queue's filter (CurationFilterForm keys); an unknown key is a 400.")
    expected = serializers.IntegerField(required=False, min_value=0,
                                        help_text="The eligible count of the preview; omit it to get the preview.")


class BulkPreviewSerializer(serializers.Serializer):
    matching = serializers.IntegerField(read_only=True, help_text="Notes the filter matches.")
    eligible = serializers.IntegerField(read_only=True, help_text="Of those, notes the action would change.")
    skipped = serializers.IntegerField(read_only=True, help_text="Matching notes in a state the action leaves.")


class BulkAppliedSerializer(serializers.Serializer):
    changed = serializers.IntegerField(read_only=True, help_text="Notes the action changed.")


class BulkView(APIView):
    """Without "expected": the preview (how many notes the action would change). With it: apply, if it still holds."""

    permission_classes = [CanCurate]

    @extend_schema(request=BulkSerializer, responses={200: PolymorphicProxySerializer(
        component_name="BulkResult", serializers=[BulkPreviewSerializer, BulkAppliedSerializer],
        resource_type_field_name=None)})
    def post(self, request: Request) -> Response:
        data = BulkSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        notes = curation_notes(filters=filters_from_request(data.validated_data["filters"],
                                                            known_keys=BULK_FILTER_KEYS))
        action = data.validated_data["action"]
        if "expected" in data.validated_data:
            changed = do_bulk_transition_notes(actor=request.user, notes=notes, action=action,
                                               reason=data.validated_data["reason"],
                                               expected=data.validated_data["expected"])
            return Response(BulkAppliedSerializer({"changed": changed}).data)
        return Response(BulkPreviewSerializer(bulk_preview(notes=notes, action=action)).data)


class ScanSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = ScanJob
        fields = ["id", "kind", "status", "progress_done", "progress_total", "percent", "flagged", "error",
                  "created_at", "started_at", "finished_at"]
        read_only_fields = fields


class ScanStartView(APIView):
    permission_classes = [CanCurate]

    @extend_schema(request=None, responses={202: ScanSerializer})
    def post(self, request: Request, kind: str) -> Response:
        return Response(ScanSerializer(do_start_scan(actor=request.user, kind=kind)).data,
                        status=status.HTTP_202_ACCEPTED)


class ScanStatusView(APIView):
    permission_classes = [CanCurate]

    @extend_schema(responses=ScanSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(ScanSerializer(get_object_or_404(ScanJob, pk=pk)).data)
