"""DRF endpoints: plan previews, jobs (create, list, status, cancel, resume) and generated notes."""

from __future__ import annotations

from typing import get_args

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from medsyn_site.core.api import HasPerm
from medsyn_site.core.forms import AsciiIntegerSerializerField

from . import selectors
from .forms import NoteFilterForm, model_and_template_check
from .jobs import MAX_NEW_TOKENS, do_cancel_job, do_create_job, do_resume_job, job_plan_preview, plan_request_from
from .models import GenerationJob, Language, ModelConfig, Note, PromptTemplate
from .planning import MAX_TASKS, MAX_TASKS_PER_CATEGORY, Allocation, Plan, SymptomMode

RunGeneration = HasPerm.of("run_generation")


class PlanRequestSerializer(serializers.Serializer):
    """A plan request as JSON. The fields only read the types; every rule is jobs.plan_request_from's, which the
    job form uses too, so both accept and refuse the same requests (and say why by field)."""

    categories = serializers.ListField(child=serializers.CharField(), required=False, allow_null=True,
                                       help_text="ICD-10 codes, cut to their categories; none: every category "
                                                 "with example notes.")
    budget = AsciiIntegerSerializerField(help_text=f"Tasks, 1 to {MAX_TASKS}; the plan may not exceed {MAX_TASKS} "
                                                f"tasks nor {MAX_TASKS_PER_CATEGORY} in a category.")
    allocation = serializers.ChoiceField(choices=get_args(Allocation), required=False)
    explicit_counts = serializers.DictField(child=AsciiIntegerSerializerField(), required=False,
                                            help_text=f"Tasks by ICD-10 category (one of the plan's), for explicit "
                                                      f"allocation: each 0 to {MAX_TASKS_PER_CATEGORY}, at most "
                                                      f"{MAX_TASKS} together.")
    overrides = serializers.DictField(child=AsciiIntegerSerializerField(), required=False,
                                      help_text=f"Tasks by ICD-10 category (one of the plan's), replacing the "
                                                f"allocation's: each 0 to {MAX_TASKS_PER_CATEGORY}.")
    symptom_mode = serializers.ChoiceField(choices=get_args(SymptomMode), required=False)
    variant = serializers.ChoiceField(choices=PromptTemplate.Variant.choices, required=False)
    language = serializers.ChoiceField(choices=Language.choices, required=False)
    seed = AsciiIntegerSerializerField(required=False, help_text="A signed 64-bit integer.")
    min_words = AsciiIntegerSerializerField(required=False)
    temperature = serializers.FloatField(required=False, allow_null=True, help_text="0 to 2.")
    top_p = serializers.FloatField(required=False, allow_null=True, help_text="0 to 1.")
    max_new_tokens = AsciiIntegerSerializerField(required=False, allow_null=True, help_text=f"1 to {MAX_NEW_TOKENS}.")
    checks = serializers.DictField(child=serializers.FloatField(), required=False,
                                   help_text="Check thresholds by name, e.g. {\"symptom_recall_min\": 0.5}.")

    def validate(self, attrs: dict) -> dict:
        return {**attrs, "plan_request": plan_request_from(attrs)}


class JobCreateSerializer(PlanRequestSerializer):
    model_config = serializers.SlugRelatedField(
        slug_field="name", queryset=ModelConfig.objects.all(), required=False,
        help_text="A model that writes the language; none: the language's default (Gemma 3 270M for Russian, "
                  "SmolLM2 for English).")
    prompt_template = serializers.SlugRelatedField(
        slug_field="name", queryset=PromptTemplate.objects.filter(is_current=True), required=False,
        help_text="The name of a template of the variant and language (its current version); none: the default "
                  "one in the model's style (a name ending in -completion for a base model).")
    budget_cap = serializers.DecimalField(max_digits=12, decimal_places=6, min_value=0, required=False,
                                          allow_null=True)


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
    items_per_second = serializers.FloatField(allow_null=True, help_text="null until the job has run for a while.")

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


class PlanPreviewAPI(APIView):
    """POST plan parameters, get the per-category preview (count, weight, N_exmp, N_symp)."""

    permission_classes = [RunGeneration]

    @extend_schema(request=PlanRequestSerializer, responses=PlanSerializer)
    def post(self, request: Request) -> Response:
        serializer = PlanRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return Response(plan_data(job_plan_preview(serializer.validated_data["plan_request"])))


class JobListCreateAPI(ListAPIView):
    permission_classes = [RunGeneration]
    serializer_class = JobSerializer

    def get_queryset(self):
        return selectors.generation_jobs_list()

    @extend_schema(request=JobCreateSerializer, responses={201: JobSerializer})
    def post(self, request: Request) -> Response:
        serializer = JobCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        plan_request = data["plan_request"]
        model_config, template = model_and_template_check(  # a mismatch is a 400 naming the field
            model_config=data.get("model_config"), variant=plan_request.variant, language=plan_request.language,
            template=data.get("prompt_template"))
        job = do_create_job(request=plan_request, model_config=model_config, actor=request.user,
                            prompt_template=template, budget_cap=data.get("budget_cap"))
        return Response(JobSerializer(job).data, status=status.HTTP_201_CREATED)


class JobDetailAPI(RetrieveAPIView):
    permission_classes = [RunGeneration]
    serializer_class = JobSerializer

    def get_queryset(self):
        return selectors.generation_jobs_list()


class JobCancelAPI(APIView):
    permission_classes = [RunGeneration]

    @extend_schema(request=None, responses=JobSerializer)
    def post(self, request: Request, pk: int) -> Response:
        job = do_cancel_job(job=get_object_or_404(GenerationJob, pk=pk), actor=request.user)
        return Response(JobSerializer(job).data)


class JobResumeAPI(APIView):
    permission_classes = [RunGeneration]

    @extend_schema(request=None, responses=JobSerializer)
    def post(self, request: Request, pk: int) -> Response:
        job = do_resume_job(job=get_object_or_404(GenerationJob, pk=pk), actor=request.user)
        return Response(JobSerializer(job).data)


class NoteListAPI(ListAPIView):
    """Generated notes; filters ?code= ?model= ?variant= ?check=pass|fail ?job= (forms.NoteFilterForm: an invalid
    filter, a NUL or a job not in ASCII digits, is a 400 naming it)."""

    permission_classes = [RunGeneration]
    serializer_class = NoteSerializer

    def get_queryset(self):
        form = NoteFilterForm(self.request.query_params)
        if not form.is_valid():
            raise serializers.ValidationError(form.errors.get_json_data())
        return selectors.synthetic_notes_filter(**form.filters())


class NoteDetailAPI(RetrieveAPIView):
    permission_classes = [RunGeneration]
    serializer_class = NoteSerializer
    queryset = Note.objects.filter(origin=Note.Origin.SYNTHETIC)
