"""Instruction sets (versioned, immutable training data with provenance) and LoRA fine-tuning jobs.

Depends on generation (ModelConfig, PromptTemplate, Note) and graph versions; nothing in generation depends on it
except through the ModelConfig a finished fine-tuning job registers.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from generation.models import ModelConfig, Note
from medsyn_site.core.models import BackgroundJob


class InstructionSet(models.Model):
    """One version of an instruction set: (instruction, input, output) records built from real notes of a split and
    the graph, rendered with chosen prompt template versions. Immutable once built: a change is a new version.

    provenance: graph version, template ids and versions, source split and note count, seed, caps and shares;
    counts: records per ICD-10 category and per part (train / validation); file_path: the Alpaca JSONL (one
    object per line: instruction, input, output, plus category, variant, note_id, part), under INSTRUCTION_SETS_DIR.
    """

    class Status(models.TextChoices):
        BUILDING = "building", _("Building")
        READY = "ready", _("Ready")
        FAILED = "failed", _("Failed")

    name = models.CharField(_("name"), max_length=100)
    version = models.PositiveIntegerField(default=1)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.BUILDING)
    split = models.CharField(_("source split"), max_length=16)
    seed = models.BigIntegerField(default=17)
    graph_version = models.CharField(max_length=100, blank=True, default="")
    provenance = models.JSONField(default=dict, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    n_train = models.PositiveIntegerField(default=0)
    n_validation = models.PositiveIntegerField(default=0)
    file_path = models.CharField(max_length=500, blank=True, default="")
    sha256 = models.CharField(max_length=64, blank=True, default="")
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    source_notes = models.ManyToManyField(Note, blank=True, related_name="instruction_sets")

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["name", "version"], name="instruction_set_name_version")]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class InstructionSetBuild(BackgroundJob):
    """The build of one instruction set version by a worker on the default queue: a build of RuMedTop3 train (4.7k
    notes) takes 6-9 s in a fresh process, most of it matching the symptom lexicon, too long for a request
    (bench/bench_instruction_set.py). parameters: the request (instruction_sets.InstructionSetRequest) with the
    template ids resolved when it was made. Progress in notes; the set's status follows the build's end."""

    progress_unit = "notes"

    instruction_set = models.OneToOneField(InstructionSet, on_delete=models.CASCADE, related_name="build")
    parameters = models.JSONField(default=dict)

    class Meta(BackgroundJob.Meta):
        pass

    def __str__(self) -> str:
        return f"build of instruction set {self.instruction_set_id} ({self.status})"

    def task_send(self) -> None:
        from medsyn_site.core.jobs import task_send

        from .tasks_sets import run_instruction_set_build

        task_send(run_instruction_set_build, args=[self.pk], queue="default")


class FineTuneJob(BackgroundJob):
    """A LoRA fine-tuning run (peft) of a local base model on an instruction set, on the gpu queue.

    Progress is in optimiser steps (progress_done / progress_total); metrics holds the curve: a list of
    {step, epoch, train_loss, val_loss (or null), learning_rate, tokens, tokens_per_second, eta_seconds, at}.
    checkpoint_step is the last step saved under output_dir/checkpoints (a killed worker resumes from it, and the
    metrics past it are dropped then, so no step is listed twice). run_info holds the facts of the run (device,
    dtype, records used and skipped, target modules, parameters, warnings). A finished job registers result_config:
    the base model plus the adapter, usable by generation jobs at once."""

    progress_unit = "steps"

    base_config = models.ForeignKey(ModelConfig, on_delete=models.PROTECT, related_name="finetune_jobs")
    instruction_set = models.ForeignKey(InstructionSet, on_delete=models.PROTECT, related_name="finetune_jobs")
    name = models.CharField(_("name of the new model"), max_length=100)
    lora_r = models.PositiveIntegerField(default=16, validators=[MinValueValidator(1), MaxValueValidator(512)])
    lora_alpha = models.PositiveIntegerField(default=16, validators=[MinValueValidator(1), MaxValueValidator(1024)])
    lora_dropout = models.FloatField(default=0.05, validators=[MinValueValidator(0.0), MaxValueValidator(0.9)])
    target_modules = models.JSONField(default=list)  # default: ["q_proj", "k_proj", "v_proj", "o_proj"]
    learning_rate = models.FloatField(default=2e-5, validators=[MinValueValidator(1e-8), MaxValueValidator(1.0)])
    epochs = models.FloatField(default=3, validators=[MinValueValidator(0.01), MaxValueValidator(100)])
    batch_size = models.PositiveIntegerField(default=256, validators=[MinValueValidator(1)],
                                             help_text=_("Effective batch (micro-batch x gradient accumulation)."))
    micro_batch_size = models.PositiveIntegerField(default=8, validators=[MinValueValidator(1)])
    max_length = models.PositiveIntegerField(default=512, validators=[MinValueValidator(8)])
    max_steps = models.PositiveIntegerField(null=True, blank=True,
                                            help_text=_("Stop after this many steps (a short run); empty: epochs."))
    warmup_steps = models.PositiveIntegerField(default=100, help_text=_(
        "Linear warm-up of the learning rate before the cosine decay; at most a tenth of a short run's steps."))
    checkpoint_every = models.PositiveIntegerField(default=50, validators=[MinValueValidator(1)])
    eval_every = models.PositiveIntegerField(default=50, validators=[MinValueValidator(1)],
                                             help_text=_("Validation loss every this many steps (and at the end)."))
    seed = models.BigIntegerField(default=17)
    device = models.CharField(max_length=16, blank=True, default="")  # chosen at run time: cpu / cuda
    dtype = models.CharField(max_length=16, blank=True, default="")
    metrics = models.JSONField(default=list, blank=True)
    run_info = models.JSONField(default=dict, blank=True)
    checkpoint_step = models.PositiveIntegerField(default=0)
    output_dir = models.CharField(max_length=500, blank=True, default="")
    result_config = models.OneToOneField(ModelConfig, null=True, blank=True, on_delete=models.SET_NULL,
                                         related_name="finetune_source")
    cancel_requested = models.BooleanField(default=False)

    class Meta(BackgroundJob.Meta):
        pass

    def __str__(self) -> str:
        return f"fine-tune {self.pk} {self.name} ({self.status})"

    def task_send(self) -> None:
        from medsyn_site.core.jobs import task_send

        from .tasks import run_finetune_job

        task_send(run_finetune_job, args=[self.pk], queue="gpu")
