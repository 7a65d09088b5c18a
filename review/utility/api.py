"""DRF endpoints of utility evaluations: list and start, status, the result as JSON, cancel; evaluation sets: list,
upload (multipart), one set. Views validate the types and call one service; every rule is the service's (the page
form and the command meet the same), errors map to responses in core.api."""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.utils.translation import gettext as _
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from medsyn_site.core.api import HasPerm
from medsyn_site.core.errors import InputError
from medsyn_site.core.forms import AsciiIntegerSerializerField
from review.releases.models import Release

from .models import MAX_BOOTSTRAP, MAX_SEEDS, PLAN_DEFAULTS, UTILITY_PERMISSION, EvaluationSet, UtilityEvaluation
from .selectors import evaluation_sets_list, utility_command_line, utility_evaluations_list
from .services import do_cancel_utility_evaluation, do_start_utility_evaluation, do_upload_evaluation_set

CanEvaluate = HasPerm.of(UTILITY_PERMISSION)
LIST_LIMIT = 200


class EvaluationStartSerializer(serializers.Serializer):
    """A new evaluation. An absent setting takes the default of `manage.py evaluate_utility`."""

    real_split = serializers.CharField(max_length=16, help_text="Split of the real training notes, e.g. \"train\".")
    synthetic = serializers.ChoiceField(choices=UtilityEvaluation.Synthetic.choices, default="none",
                                        help_text="none: real notes only; release: the release's synthetic notes; "
                                                  "approved: the approved notes a release would take now.")
    release = serializers.PrimaryKeyRelatedField(queryset=Release.objects.all(), required=False, allow_null=True,
                                                 help_text="With synthetic \"release\": the release, by id.")
    approved_filters = serializers.DictField(required=False, help_text=(
        "With synthetic \"approved\": a release filter (curation queue keys but state), e.g. {\"code\": \"J06\"}."))
    evaluation_split = serializers.CharField(max_length=16, required=False, allow_blank=True,
                                             help_text="The evaluation set as real notes of a split, e.g. \"dev\".")
    evaluation_set = serializers.PrimaryKeyRelatedField(queryset=EvaluationSet.objects.all(), required=False,
                                                        allow_null=True,
                                                        help_text="Or an uploaded evaluation set, by id.")
    classifier = serializers.CharField(max_length=32, required=False,
                                       help_text=f"tfidf-lr or tfidf-svm (default {PLAN_DEFAULTS['classifier']}).")
    grid = serializers.CharField(max_length=16, required=False,
                                 help_text=f"paper or quick (default {PLAN_DEFAULTS['grid']}).")
    seeds = AsciiIntegerSerializerField(required=False, help_text=f"Seeds 0 .. N-1, 1 to {MAX_SEEDS} (default "
                                                                  f"{PLAN_DEFAULTS['seeds']}).")
    upsample_to = AsciiIntegerSerializerField(required=False, help_text=f"Default {PLAN_DEFAULTS['upsample_to']}.")
    held_out_codes = serializers.ListField(child=serializers.CharField(max_length=20), required=False,
                                           help_text="ICD-10 categories learned from synthetic notes only; "
                                                     "none: drawn with the first seed.")
    held_out_count = AsciiIntegerSerializerField(required=False,
                                                 help_text=f"Default {PLAN_DEFAULTS['held_out_count']}.")
    bootstrap = AsciiIntegerSerializerField(required=False, help_text=f"100 to {MAX_BOOTSTRAP} (default "
                                                                      f"{PLAN_DEFAULTS['bootstrap']}).")
    max_overlap = serializers.FloatField(required=False, help_text=(
        f"Refuse the run when more than this share of evaluation notes occur among the real training notes "
        f"(default {PLAN_DEFAULTS['max_overlap']})."))


class UtilityEvaluationSerializer(serializers.ModelSerializer):
    release = serializers.SerializerMethodField()
    evaluation_set = serializers.SerializerMethodField()
    percent = serializers.IntegerField()
    created_by = serializers.CharField(source="created_by.get_username", default=None, allow_null=True)
    command = serializers.SerializerMethodField()
    result_url = serializers.SerializerMethodField()
    overlap = serializers.DictField(help_text="The overlap report of the run (also of a run refused for overlap).")

    class Meta:
        model = UtilityEvaluation
        fields = ["id", "status", "step", "real_split", "synthetic", "release", "approved_filters", "evaluation_set",
                  "evaluation_split", "classifier", "grid", "seeds", "upsample_to", "held_out_codes", "held_out_count",
                  "bootstrap", "max_overlap", "progress_done", "progress_total", "percent", "overlap", "error",
                  "command", "result_url", "created_by", "created_at", "started_at", "finished_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.DictField(allow_null=True))
    def get_release(self, evaluation: UtilityEvaluation) -> dict | None:
        release = evaluation.release
        return None if release is None else {"id": release.pk, "name": release.name, "version": release.version,
                                             "content_sha256": release.content_sha256}

    @extend_schema_field(serializers.DictField(allow_null=True))
    def get_evaluation_set(self, evaluation: UtilityEvaluation) -> dict | None:
        item = evaluation.evaluation_set
        return None if item is None else {"id": item.pk, "name": item.name, "sha256": item.sha256}

    @extend_schema_field(serializers.CharField())
    def get_command(self, evaluation: UtilityEvaluation) -> str:
        """The `manage.py evaluate_utility` call that repeats the evaluation."""
        return utility_command_line(evaluation)

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_result_url(self, evaluation: UtilityEvaluation) -> str | None:
        return (reverse("utility-api-evaluation-result", kwargs={"pk": evaluation.pk})
                if evaluation.status == "done" else None)


class EvaluationSetSerializer(serializers.ModelSerializer):
    created_by = serializers.CharField(source="created_by.get_username", default=None, allow_null=True)

    class Meta:
        model = EvaluationSet
        fields = ["id", "name", "original_name", "file_sha256", "sha256", "note_count", "code_count", "created_by",
                  "created_at"]
        read_only_fields = fields


class EvaluationSetUploadSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    file = serializers.FileField(help_text="A RuMedTop3 jsonl file (idx, symptoms, code), UTF-8.")


class ProblemSerializer(serializers.Serializer):
    line = serializers.IntegerField(help_text="Line of the file (0: the whole file).")
    message = serializers.CharField()


class UploadProblemsSerializer(serializers.Serializer):
    detail = serializers.CharField()
    problems = ProblemSerializer(many=True)


class UtilityEvaluationsAPI(APIView):
    """GET: evaluations, newest first (at most 200). POST: start one on the default queue (201 with it)."""

    permission_classes = [CanEvaluate]

    @extend_schema(responses=UtilityEvaluationSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(UtilityEvaluationSerializer(utility_evaluations_list()[:LIST_LIMIT], many=True).data)

    @extend_schema(request=EvaluationStartSerializer, responses={201: UtilityEvaluationSerializer})
    def post(self, request: Request) -> Response:
        serializer = EvaluationStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        evaluation = do_start_utility_evaluation(**serializer.validated_data, actor=request.user)
        return Response(UtilityEvaluationSerializer(evaluation).data, status=status.HTTP_201_CREATED)


class UtilityEvaluationAPI(APIView):
    """One evaluation: its inputs, progress in fits, overlap report, error, and where its result is once done."""

    permission_classes = [CanEvaluate]

    @extend_schema(responses=UtilityEvaluationSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(UtilityEvaluationSerializer(get_object_or_404(utility_evaluations_list(), pk=pk)).data)


class UtilityResultAPI(APIView):
    """The finished evaluation's result: UtilityResult.as_json() (inputs with every hash and parameter, overlap,
    cells with each metric on all codes and on the deciles, per code, per chapter, timings); 404 before it is
    done."""

    permission_classes = [CanEvaluate]

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    def get(self, request: Request, pk: int) -> Response:
        evaluation = get_object_or_404(UtilityEvaluation, pk=pk)
        if evaluation.status != "done" or not evaluation.result:
            raise Http404(_("This evaluation has no result yet."))
        return Response(evaluation.result)


class UtilityCancelAPI(APIView):
    """Stop a queued or running evaluation after its current fit; 409 when it has finished."""

    permission_classes = [CanEvaluate]

    @extend_schema(request=None, responses=UtilityEvaluationSerializer)
    def post(self, request: Request, pk: int) -> Response:
        evaluation = do_cancel_utility_evaluation(evaluation=get_object_or_404(UtilityEvaluation, pk=pk),
                                                  actor=request.user)
        return Response(UtilityEvaluationSerializer(evaluation).data)


class EvaluationSetsAPI(APIView):
    """GET: the uploaded evaluation sets. POST (multipart: name, file): import a RuMedTop3 file all or nothing; 201
    with the set, or 400 listing every bad line."""

    permission_classes = [CanEvaluate]
    parser_classes = [MultiPartParser]

    @extend_schema(responses=EvaluationSetSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(EvaluationSetSerializer(evaluation_sets_list()[:LIST_LIMIT], many=True).data)

    @extend_schema(request={"multipart/form-data": EvaluationSetUploadSerializer},
                   responses={201: EvaluationSetSerializer, 400: UploadProblemsSerializer})
    def post(self, request: Request) -> Response:
        serializer = EvaluationSetUploadSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            evaluation_set = do_upload_evaluation_set(name=serializer.validated_data["name"],
                                                      upload=serializer.validated_data["file"], actor=request.user)
        except InputError as error:
            return Response({"detail": str(error), "problems": error.report()}, status=status.HTTP_400_BAD_REQUEST)
        return Response(EvaluationSetSerializer(evaluation_set).data, status=status.HTTP_201_CREATED)



class EvaluationSetAPI(APIView):
    permission_classes = [CanEvaluate]

    @extend_schema(responses=EvaluationSetSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(EvaluationSetSerializer(get_object_or_404(evaluation_sets_list(), pk=pk)).data)
