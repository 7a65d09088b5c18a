"""DRF endpoints: plan previews, jobs (create, list, status, cancel, resume) and generated notes."""

from __future__ import annotations

import dataclasses

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from graph.store import GraphUnavailable

from . import selectors
from .checks import CheckThresholds
from .jobs import PlanRequest, do_cancel_job, do_create_job, do_resume_job, job_plan_preview
from .models import GenerationJob, Language, ModelConfig, Note, PromptTemplate
from .planning import DEFAULT_MIN_WORDS, Plan, PlanError


class CanRunGeneration(BasePermission):
    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.has_perm("medsyn_site.run_generation"))


class PlanRequestSerializer(serializers.Serializer):
    categories = serializers.ListField(child=serializers.RegexField(r"^[A-Z]\d{2}$"), required=False,
                                       allow_empty=True)
    budget = serializers.IntegerField(min_value=0, max_value=100_000)
    allocation = serializers.ChoiceField(choices=["weighted", "uniform", "explicit"], default="weighted")
    explicit_counts = serializers.DictField(child=serializers.IntegerField(min_value=0), required=False)
    overrides = serializers.DictField(child=serializers.IntegerField(min_value=0), required=False)
    symptom_mode = serializers.ChoiceField(choices=["uniform", "weighted"], default="uniform")
    variant = serializers.ChoiceField(choices=PromptTemplate.Variant.choices, default="symptoms_example")
    language = serializers.ChoiceField(choices=Language.choices, default="ru")
    seed = serializers.IntegerField(default=17)
    min_words = serializers.IntegerField(min_value=1, default=DEFAULT_MIN_WORDS)
    temperature = serializers.FloatField(min_value=0, max_value=2, required=False, allow_null=True)
    top_p = serializers.FloatField(min_value=0, max_value=1, required=False, allow_null=True)
    max_new_tokens = serializers.IntegerField(min_value=1, required=False, allow_null=True)
    checks = serializers.DictField(child=serializers.FloatField(), required=False,
                                   help_text="Check thresholds by name, e.g. {\"symptom_recall_min\": 0.5}.")

    def validate_checks(self, value: dict) -> dict:
        known = {f.name for f in dataclasses.fields(CheckThresholds)} - {"allowed_latin_words"}
        unknown = sorted(set(value) - known)
        if unknown:
            raise serializers.ValidationError(f"unknown check threshold(s): {', '.join(unknown)}")
        return value

    def plan_request(self) -> PlanRequest:
        fields = {f.name for f in dataclasses.fields(PlanRequest)}
        data = {key: value for key, value in self.validated_data.items() if key in fields}
        data["categories"] = data.get("categories") or None
        data.setdefault("explicit_counts", {})
        data.setdefault("overrides", {})
        data.setdefault("checks", {})
        return PlanRequest(**data)


class JobCreateSerializer(PlanRequestSerializer):
    model_config = serializers.SlugRelatedField(slug_field="name", queryset=ModelConfig.objects.all())
    budget_cap = serializers.DecimalField(max_digits=12, decimal_places=6, required=False, allow_null=True)


class PlanRowSerializer(serializers.Serializer):
    category = serializers.CharField()
    name = serializers.CharField()
    count = serializers.IntegerField()
    weight = serializers.FloatField()
    n_exmp = serializers.IntegerField()
    n_symp = serializers.FloatField()


class PlanSerializer(serializers.Serializer):
    seed = serializers.IntegerField()
    graph_version = serializers.CharField(allow_null=True)
    allocation = serializers.CharField()
    total = serializers.IntegerField()
    rows = PlanRowSerializer(many=True)


def plan_data(plan: Plan) -> dict:
    return {
        "seed": plan.seed, "graph_version": plan.graph_version, "allocation": plan.allocation, "total": plan.total,
        "rows": [{"category": r.category, "name": r.name, "count": r.count, "weight": r.weight,
                  "n_exmp": r.n_exmp, "n_symp": r.n_symp} for r in plan.rows],
    }


class JobSerializer(serializers.ModelSerializer):
    model_config = serializers.CharField(source="model_config.name")
    prompt_template = serializers.SerializerMethodField()
    percent = serializers.IntegerField()
    items_per_second = serializers.FloatField()

    class Meta:
        model = GenerationJob
        fields = ["id", "status", "parameters", "model_config", "prompt_template", "seed", "graph_version", "planned",
                  "ok", "failed", "skipped", "failed_checks", "percent", "items_per_second", "prompt_tokens",
                  "completion_tokens", "cost", "budget_cap", "error", "created_at", "started_at", "finished_at"]

    @extend_schema_field(serializers.DictField())
    def get_prompt_template(self, job: GenerationJob) -> dict:
        template = job.prompt_template
        return {"id": template.pk, "name": template.name, "version": template.version, "variant": template.variant}


class NoteSerializer(serializers.ModelSerializer):
    class Meta:
        model = Note
        fields = ["id", "icd_code", "icd_category", "language", "text", "source_dataset", "metadata", "created_at"]


def _plan_problem(error: Exception) -> Response:
    return Response({"detail": str(error)}, status=status.HTTP_400_BAD_REQUEST)


class PlanPreviewAPI(APIView):
    """POST plan parameters, get the per-category preview (count, weight, N_exmp, N_symp)."""

    permission_classes = [CanRunGeneration]

    @extend_schema(request=PlanRequestSerializer, responses=PlanSerializer)
    def post(self, request: Request) -> Response:
        serializer = PlanRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            return Response(plan_data(job_plan_preview(serializer.plan_request())))
        except PlanError as error:
            return _plan_problem(error)
        except GraphUnavailable as error:
            return Response({"detail": str(error)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)


class JobListCreateAPI(ListAPIView):
    permission_classes = [CanRunGeneration]
    serializer_class = JobSerializer

    def get_queryset(self):
        return selectors.generation_jobs_list()

    @extend_schema(request=JobCreateSerializer, responses={201: JobSerializer})
    def post(self, request: Request) -> Response:
        serializer = JobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            data = serializer.validated_data
            job = do_create_job(request=serializer.plan_request(), model_config=data["model_config"],
                                user=request.user, budget_cap=data.get("budget_cap"))
        except (PlanError, PromptTemplate.DoesNotExist) as error:
            return _plan_problem(error)
        except GraphUnavailable as error:
            return Response({"detail": str(error)}, status=status.HTTP_503_SERVICE_UNAVAILABLE)
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)


class JobDetailAPI(RetrieveAPIView):
    permission_classes = [CanRunGeneration]
    serializer_class = JobSerializer

    def get_queryset(self):
        return selectors.generation_jobs_list()


class JobCancelAPI(APIView):
    permission_classes = [CanRunGeneration]

    @extend_schema(request=None, responses=JobSerializer)
    def post(self, request: Request, pk: int) -> Response:
        job = do_cancel_job(job=get_object_or_404(GenerationJob, pk=pk))
        return Response(JobSerializer(job).data)


class JobResumeAPI(APIView):
    permission_classes = [CanRunGeneration]

    @extend_schema(request=None, responses=JobSerializer)
    def post(self, request: Request, pk: int) -> Response:
        job = do_resume_job(job=get_object_or_404(GenerationJob, pk=pk))
        return Response(JobSerializer(job).data)


class NoteListAPI(ListAPIView):
    """Generated notes; filters ?code= ?model= ?variant= ?check=pass|fail ?job=."""

    permission_classes = [CanRunGeneration]
    serializer_class = NoteSerializer

    def get_queryset(self):
        params = self.request.query_params
        job = params.get("job", "")
        return selectors.synthetic_notes_filter(code=params.get("code", ""), model=params.get("model", ""),
                                                variant=params.get("variant", ""), check=params.get("check", ""),
                                                job=job if job.isdigit() else None)


class NoteDetailAPI(RetrieveAPIView):
    permission_classes = [CanRunGeneration]
    serializer_class = NoteSerializer
    queryset = Note.objects.filter(origin=Note.Origin.SYNTHETIC)
