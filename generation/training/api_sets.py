"""Instruction set API: list and build (POST), preview (POST), one set, and its files (the Alpaca JSONL and the
`datasets` folder as a zip). Views validate input and call one service; errors map to responses in core.api (a
refused request, an evaluation split among them: 400)."""

from __future__ import annotations

from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from medsyn_site.core.api import HasPerm
from medsyn_site.core.forms import AsciiIntegerSerializerField

from .instruction_sets import (
    DEFAULT_VALIDATION_SHARE,
    DOWNLOADS,
    EVALUATION_SPLITS,
    MAX_CAP_PER_CATEGORY,
    MAX_VALIDATION_SHARE,
    InstructionSetPlan,
    do_build_instruction_set,
    instruction_set_preview,
    instruction_set_request_from,
    instruction_sets_list,
)
from .models import InstructionSet, InstructionSetBuild
from .views_sets import instruction_set_file_response

RunGeneration = HasPerm.of("run_generation")


class InstructionSetRequestSerializer(serializers.Serializer):
    """A preview request as JSON. The fields only read the types; every rule is
    instruction_sets.instruction_set_request_from's, which the page form and the command use too."""

    split = serializers.CharField(help_text=f"A split of real notes, e.g. \"train\"; evaluation splits "
                                            f"({', '.join(sorted(EVALUATION_SPLITS))}) are refused.")
    source_dataset = serializers.CharField(required=False, allow_blank=True,
                                           help_text="Only the split's notes of this source data set (e.g. "
                                                     "\"RuMedTop3\"); empty: all of them.")
    templates = serializers.ListField(child=AsciiIntegerSerializerField(), required=False,
                                      help_text="Prompt template ids, exactly one per variant (symptoms_example, "
                                                "symptoms, code); none: the current Russian templates.")
    seed = AsciiIntegerSerializerField(required=False, help_text="A signed 64-bit integer (default 17).")
    cap_per_category = AsciiIntegerSerializerField(required=False, allow_null=True,
                                                   help_text=f"At most this many records per ICD-10 category, 1 to "
                                                             f"{MAX_CAP_PER_CATEGORY}; null: no cap.")
    validation_share = serializers.FloatField(required=False,
                                              help_text=f"Share of the notes held out for validation, with all "
                                                        f"their records: 0 to {MAX_VALIDATION_SHARE} (default "
                                                        f"{DEFAULT_VALIDATION_SHARE}).")

    require_name = False

    def validate(self, attrs: dict) -> dict:
        return {**attrs, "request": instruction_set_request_from(attrs, require_name=self.require_name)}


class InstructionSetCreateSerializer(InstructionSetRequestSerializer):
    name = serializers.CharField(max_length=100, help_text="Letters, digits, hyphens and underscores; a name that "
                                                           "exists gets its next version.")

    require_name = True


class CountRowSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The ICD-10 category, or the prompt variant.")
    train = serializers.IntegerField()
    validation = serializers.IntegerField()


class InstructionSetPreviewSerializer(serializers.Serializer):
    total = serializers.IntegerField(help_text="Records the build would write.")
    n_train = serializers.IntegerField()
    n_validation = serializers.IntegerField()
    source_notes = serializers.IntegerField(help_text="Notes whose text is the output of a record.")
    graph_version = serializers.CharField()
    by_category = CountRowSerializer(many=True)
    by_variant = CountRowSerializer(many=True)
    skipped = serializers.DictField(child=serializers.IntegerField(),
                                    help_text="Records left out, by reason: no_symptoms, prompt_too_long, duplicate, "
                                              "over_cap.")


def _rows(counts: dict[str, dict[str, int]]) -> list[dict]:
    return [{"key": key, **parts} for key, parts in counts.items()]


def preview_data(plan: InstructionSetPlan) -> dict:
    return {"total": plan.total, "n_train": plan.n_train, "n_validation": plan.n_validation,
            "source_notes": plan.provenance["source_notes"], "graph_version": plan.provenance["graph_version"],
            "by_category": _rows(plan.counts["by_category"]), "by_variant": _rows(plan.counts["by_variant"]),
            "skipped": plan.skipped}


class InstructionSetBuildSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True)
    finished = serializers.BooleanField(read_only=True)

    class Meta:
        model = InstructionSetBuild
        fields = ["status", "finished", "percent", "progress_done", "progress_total", "step", "error", "created_at",
                  "started_at", "finished_at"]
        read_only_fields = fields


class InstructionSetSerializer(serializers.ModelSerializer):
    # Text, not a choice: an enum of its own named "status" would rename the shared job-status enum (StatusEnum)
    # of every other job in the schema (drf-spectacular names enums by field name).
    status = serializers.CharField(read_only=True, help_text="building, ready or failed.")
    created_by = serializers.CharField(source="created_by.get_username", default="", read_only=True)
    provenance = serializers.DictField(read_only=True, help_text="Graph version, prompt templates (id, name, version, "
                                                                 "variant), split, source notes, seed, cap, "
                                                                 "validation share, skipped records, files.")
    counts = serializers.DictField(read_only=True, help_text="Records by_category and by_variant, each "
                                                             "{key: {train, validation}}.")
    build = InstructionSetBuildSerializer(read_only=True, help_text="The job that builds the set: poll the set "
                                                                    "until build.finished.")
    downloads = serializers.SerializerMethodField()

    class Meta:
        model = InstructionSet
        fields = ["id", "name", "version", "status", "split", "seed", "graph_version", "provenance", "counts",
                  "n_train", "n_validation", "sha256", "error", "created_by", "created_at", "build", "downloads"]
        read_only_fields = fields

    @extend_schema_field(serializers.DictField(child=serializers.CharField()))
    def get_downloads(self, instruction_set: InstructionSet) -> dict[str, str]:
        """The file URLs of a ready set, by file name (train.jsonl, datasets.zip)."""
        if instruction_set.status != InstructionSet.Status.READY:
            return {}
        return {name: reverse("training-api-set-file", kwargs={"pk": instruction_set.pk, "name": name})
                for name in DOWNLOADS}


class InstructionSetsView(APIView):
    """GET: every instruction set, newest first. POST: reserve the next version of a set (status
    building) and queue its build on a worker (6-9 s for RuMedTop3 train): 202, then poll the set."""

    permission_classes = [RunGeneration]

    @extend_schema(responses=InstructionSetSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(InstructionSetSerializer(instruction_sets_list(), many=True).data)

    @extend_schema(request=InstructionSetCreateSerializer, responses={202: InstructionSetSerializer})
    def post(self, request: Request) -> Response:
        serializer = InstructionSetCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = do_build_instruction_set(request=serializer.validated_data["request"], actor=request.user)
        return Response(InstructionSetSerializer(instruction_sets_list().get(pk=created.pk)).data,
                        status=status.HTTP_202_ACCEPTED)


class InstructionSetPreviewView(APIView):
    """The counts a build of these parameters would write (per category, per variant, skipped), nothing written."""

    permission_classes = [RunGeneration]

    @extend_schema(request=InstructionSetRequestSerializer, responses=InstructionSetPreviewSerializer)
    def post(self, request: Request) -> Response:
        serializer = InstructionSetRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(preview_data(instruction_set_preview(serializer.validated_data["request"])))


class InstructionSetView(APIView):
    """One instruction set with its provenance and counts."""

    permission_classes = [RunGeneration]

    @extend_schema(responses=InstructionSetSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(InstructionSetSerializer(get_object_or_404(instruction_sets_list(), pk=pk)).data)


class InstructionSetFileView(APIView):
    """A file of a ready set, as an attachment: train.jsonl (Alpaca JSONL) or datasets.zip (the `datasets` folder);
    404 for any other name or a set that is not ready."""

    permission_classes = [RunGeneration]

    @extend_schema(responses={(200, "application/octet-stream"): bytes})
    def get(self, request: Request, pk: int, name: str) -> FileResponse:
        return instruction_set_file_response(get_object_or_404(InstructionSet, pk=pk), name)
