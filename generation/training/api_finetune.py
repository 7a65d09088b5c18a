"""DRF endpoints of fine-tuning jobs: list and start, status with the metrics curve, cancel, the adapter as a zip."""

from __future__ import annotations

from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from generation.models import ModelConfig
from medsyn_site.core.api import HasPerm
from medsyn_site.core.forms import AsciiIntegerSerializerField

from .finetune import (
    FINETUNE_PARAMETERS,
    do_cancel_finetune,
    do_start_finetune,
    finetune_defaults,
    finetune_jobs_list,
)
from .models import FineTuneJob, InstructionSet
from .views_finetune import adapter_zip_response

RunGeneration = HasPerm.of("run_generation")
_DEFAULTS = finetune_defaults()


class FineTuneStartSerializer(serializers.Serializer):
    """A new job. The fields only read the types; every rule is finetune.do_start_finetune's (as for the form and
    the command), which answers 400 by field. An absent setting takes the paper's default."""

    name = serializers.CharField(max_length=100, help_text="The name of the new model configuration.")
    base_config = serializers.SlugRelatedField(slug_field="name", queryset=ModelConfig.objects.all(),
                                               help_text="A local model without an adapter, by name.")
    instruction_set = serializers.PrimaryKeyRelatedField(queryset=InstructionSet.objects.all(),
                                                         help_text="A ready instruction set, by id.")
    lora_r = AsciiIntegerSerializerField(required=False, help_text=f"Default {_DEFAULTS['lora_r']}.")
    lora_alpha = AsciiIntegerSerializerField(required=False, help_text=f"Default {_DEFAULTS['lora_alpha']}.")
    lora_dropout = serializers.FloatField(required=False, help_text=f"Default {_DEFAULTS['lora_dropout']}.")
    target_modules = serializers.ListField(child=serializers.CharField(max_length=100), required=False,
                                           help_text="Default q_proj, k_proj, v_proj, o_proj (a model without them "
                                                     "gets its attention projections).")
    learning_rate = serializers.FloatField(required=False, help_text=f"Default {_DEFAULTS['learning_rate']}.")
    epochs = serializers.FloatField(required=False, help_text=f"Default {_DEFAULTS['epochs']}.")
    batch_size = AsciiIntegerSerializerField(required=False, help_text=f"Effective batch, default "
                                                                       f"{_DEFAULTS['batch_size']}.")
    micro_batch_size = AsciiIntegerSerializerField(required=False, help_text="Records per forward pass, default "
                                                                             f"{_DEFAULTS['micro_batch_size']}.")
    max_length = AsciiIntegerSerializerField(required=False, help_text=f"Default {_DEFAULTS['max_length']}.")
    max_steps = AsciiIntegerSerializerField(required=False, allow_null=True,
                                            help_text="Stop after this many steps; null: the epochs.")
    warmup_steps = AsciiIntegerSerializerField(required=False, help_text=f"Default {_DEFAULTS['warmup_steps']}.")
    checkpoint_every = AsciiIntegerSerializerField(required=False)
    eval_every = AsciiIntegerSerializerField(required=False)
    seed = AsciiIntegerSerializerField(required=False)


class FineTuneJobSerializer(serializers.ModelSerializer):
    base_config = serializers.CharField(source="base_config.name")
    instruction_set = serializers.SerializerMethodField()
    result_config = serializers.CharField(source="result_config.name", default=None, allow_null=True,
                                          help_text="The registered model (base + adapter) once done.")
    percent = serializers.IntegerField()
    metrics = serializers.ListField(child=serializers.DictField(), help_text=(
        "One entry per step: step, epoch, train_loss, val_loss (null between evaluations), learning_rate, tokens, "
        "tokens_per_second, eta_seconds, at."))
    adapter = serializers.SerializerMethodField()

    class Meta:
        model = FineTuneJob
        fields = ["id", "name", "status", "step", "base_config", "instruction_set", *FINETUNE_PARAMETERS, "device",
                  "dtype", "progress_done", "progress_total", "percent", "checkpoint_step", "metrics", "run_info",
                  "result_config", "adapter", "error", "created_at", "started_at", "finished_at"]
        read_only_fields = fields

    @extend_schema_field(serializers.DictField())
    def get_instruction_set(self, job: FineTuneJob) -> dict:
        return {"id": job.instruction_set_id, "name": job.instruction_set.name,
                "version": job.instruction_set.version}

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_adapter(self, job: FineTuneJob) -> str | None:
        """The URL of the adapter zip once the job is done."""
        return reverse("training-api-job-adapter", kwargs={"pk": job.pk}) if job.status == "done" else None


class FineTuneJobsAPI(APIView):
    """GET: fine-tuning jobs, newest first. POST: start one on the gpu queue (201 with the job)."""

    permission_classes = [RunGeneration]

    @extend_schema(responses=FineTuneJobSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(FineTuneJobSerializer(finetune_jobs_list()[:200], many=True).data)

    @extend_schema(request=FineTuneStartSerializer, responses={201: FineTuneJobSerializer})
    def post(self, request: Request) -> Response:
        serializer = FineTuneStartSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        job = do_start_finetune(base_config=data["base_config"], instruction_set=data["instruction_set"],
                                name=data["name"], actor=request.user,
                                parameters={key: data[key] for key in FINETUNE_PARAMETERS if key in data})
        return Response(FineTuneJobSerializer(job).data, status=status.HTTP_201_CREATED)


class FineTuneJobAPI(APIView):
    permission_classes = [RunGeneration]

    @extend_schema(responses=FineTuneJobSerializer)
    def get(self, request: Request, pk: int) -> Response:
        return Response(FineTuneJobSerializer(get_object_or_404(finetune_jobs_list(), pk=pk)).data)


class FineTuneCancelAPI(APIView):
    """Stop a queued or running job before its next step; 409 when it has finished."""

    permission_classes = [RunGeneration]

    @extend_schema(request=None, responses=FineTuneJobSerializer)
    def post(self, request: Request, pk: int) -> Response:
        job = do_cancel_finetune(job=get_object_or_404(FineTuneJob, pk=pk), actor=request.user)
        return Response(FineTuneJobSerializer(job).data)


class FineTuneAdapterAPI(APIView):
    """The finished job's LoRA adapter (peft folder) as a zip; 404 before the job is done."""

    permission_classes = [RunGeneration]

    @extend_schema(responses={(200, "application/zip"): bytes})
    def get(self, request: Request, pk: int) -> FileResponse:
        return adapter_zip_response(get_object_or_404(FineTuneJob, pk=pk))
