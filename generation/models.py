"""Notes (real and synthetic), versioned prompt templates and the model configurations admins edit."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

from medsyn_site.core.models import BackgroundJob, UploadJob

from .prompts import template_fields_check


class Language(models.TextChoices):
    RUSSIAN = "ru", _("Russian")
    ENGLISH = "en", _("English")


class Note(models.Model):
    """One clinical note, real (imported) or synthetic (generated or imported from a MedSyn release).

    content_hash = sha256 of origin, ICD-10 code and the normalised text (see services.note_content_hash):
    the same note imported twice, from any file, is stored once.
    """

    class Origin(models.TextChoices):
        REAL = "real", _("Real")
        SYNTHETIC = "synthetic", _("Synthetic")

    origin = models.CharField(max_length=16, choices=Origin.choices)
    text = models.TextField()
    icd_code = models.CharField(max_length=16)
    icd_category = models.CharField(max_length=3, db_index=True)
    language = models.CharField(max_length=2, choices=Language.choices, default=Language.RUSSIAN)
    source_dataset = models.CharField(max_length=100)
    split = models.CharField(max_length=16, blank=True, default="")
    content_hash = models.CharField(max_length=64, unique=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    version = models.PositiveIntegerField(default=1)  # of the text; earlier texts are kept in NoteVersion

    class Meta:
        ordering = ["id"]
        indexes = [models.Index(fields=["origin", "icd_category"]), models.Index(fields=["source_dataset", "split"])]

    def __str__(self) -> str:
        return f"{self.origin} {self.icd_code}: {self.text[:60]}"


class PromptTemplate(models.Model):
    """One version of a named prompt template; an edit adds a version (services.prompt_template_revise)."""

    class Variant(models.TextChoices):
        SYMPTOMS_EXAMPLE = "symptoms_example", _("prompt(S,E): symptoms and an example note")
        SYMPTOMS = "symptoms", _("prompt(S): symptoms")
        CODE = "code", _("prompt(code): disease name")

    name = models.CharField(max_length=100)
    variant = models.CharField(max_length=32, choices=Variant.choices)
    language = models.CharField(max_length=2, choices=Language.choices)
    system_text = models.TextField()
    user_text = models.TextField()
    version = models.PositiveIntegerField(default=1)
    is_current = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="prompt_template_name_version_unique"),
            models.UniqueConstraint(fields=["name"], condition=models.Q(is_current=True),
                                    name="prompt_template_one_current_per_name"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    def clean(self) -> None:
        try:
            template_fields_check(self.system_text, self.user_text)
        except ValueError as error:
            raise ValidationError({"user_text": str(error)}) from error


class ModelConfig(models.Model):
    """How to reach one language model: an OpenAI-compatible endpoint or a local transformers directory, and what the
    model is: the languages it writes, instruct or base (prompt_format), its licence and what it can honestly do. The
    template backend is no model: the baseline that fills fixed sentence templates (backends/template_backend.py).

    A base model (prompt_format "completion") is given completion templates, an instruct model the method's
    instructions; the new-job form and the API offer a model only for a language it writes (writes())."""

    class Backend(models.TextChoices):
        OPENAI = "openai", _("OpenAI-compatible API")
        LOCAL = "local", _("Local transformers model")
        TEMPLATE = "template", _("Template filling (no model)")

    class Dtype(models.TextChoices):
        AUTO = "auto", _("Automatic (float32 on CPU, bfloat16/float16 on CUDA)")
        FLOAT32 = "float32", "float32"
        BFLOAT16 = "bfloat16", "bfloat16"
        FLOAT16 = "float16", "float16"

    class Device(models.TextChoices):
        AUTO = "auto", _("Automatic (CUDA when present)")
        CPU = "cpu", "CPU"
        CUDA = "cuda", "CUDA"

    class PromptFormat(models.TextChoices):
        AUTO = "auto", _("Chat template when the tokenizer has one, else Alpaca")
        CHAT = "chat", _("Chat messages")
        ALPACA = "alpaca", _("Alpaca wrapper (### Задание / ### Вход / ### Ответ)")
        COMPLETION = "completion", _("Completion (base model): completion templates; the note ends at a blank line")

    name = models.CharField(max_length=100, unique=True)
    backend = models.CharField(max_length=16, choices=Backend.choices)
    base_url = models.URLField(blank=True, default="", help_text=_("Empty: settings.OPENAI_BASE_URL."))
    api_model = models.CharField(max_length=200, blank=True, default="")
    model_path = models.CharField(max_length=500, blank=True, default="",
                                  help_text=_("A directory; a relative path is read under MODEL_CACHE_DIR."))
    gguf_file = models.CharField(max_length=300, blank=True, default="")
    adapter_path = models.CharField(max_length=500, blank=True, default="", help_text=_("A LoRA adapter (peft)."))
    revision = models.CharField(max_length=100, blank=True, default="",
                                help_text=_("The snapshot in model_path, recorded with every note (not used to load)."))
    dtype = models.CharField(max_length=16, choices=Dtype.choices, default=Dtype.AUTO)
    device = models.CharField(max_length=8, choices=Device.choices, default=Device.AUTO)
    prompt_format = models.CharField(max_length=16, choices=PromptFormat.choices, default=PromptFormat.AUTO)
    languages = models.JSONField(
        _("languages"), default=list, blank=True,
        help_text=_("ISO 639-1 codes of the languages the model writes, e.g. [\"ru\", \"en\"]; empty: not stated "
                    "(offered for every language)."))
    licence = models.CharField(_("licence"), max_length=100, blank=True, default="",
                               help_text=_("The licence of the weights or the terms of the service, e.g. Apache-2.0."))
    licence_url = models.URLField(_("licence URL"), blank=True, default="")
    description = models.TextField(_("what it can do"), blank=True, default="",
                                   help_text=_("Shown wherever the model is offered: what it can honestly do."))
    temperature = models.FloatField(default=0.7, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)])
    top_p = models.FloatField(default=0.95, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    max_new_tokens = models.PositiveIntegerField(default=512, validators=[MinValueValidator(1)])
    batch_size = models.PositiveIntegerField(default=8, validators=[MinValueValidator(1)])
    chunk_size = models.PositiveIntegerField(
        _("chunk size"), null=True, blank=True, validators=[MinValueValidator(1), MaxValueValidator(10_000)],
        help_text=_("Items per chunk: a job is shared out in chunks, one task each, over every worker of its queue. "
                    "Empty: one batch (local models) or four windows of requests in flight (API models)."))
    min_memory_gb = models.FloatField(
        _("memory needed (GB)"), default=0.0, validators=[MinValueValidator(0.0)],
        help_text=_("Local models: the memory a worker needs to run it (GPU memory on CUDA, else RAM); a worker with "
                    "less never takes its chunks. A model on the CUDA device goes only to workers that have CUDA."))
    timeout_seconds = models.FloatField(default=120.0, validators=[MinValueValidator(0.01)])
    max_retries = models.PositiveIntegerField(default=5)
    concurrency = models.PositiveIntegerField(
        _("concurrency"), default=4, validators=[MinValueValidator(1), MaxValueValidator(64)],
        help_text=_("Requests in flight at once per chunk (OpenAI-compatible backends). A job's chunks run on every "
                    "api worker at once: the endpoint sees this many times the chunks running."))
    backoff_initial_seconds = models.FloatField(default=1.0, validators=[MinValueValidator(0.0)])
    backoff_max_seconds = models.FloatField(default=60.0, validators=[MinValueValidator(0.0)])
    price_per_1k_tokens = models.DecimalField(max_digits=10, decimal_places=6, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_base_model(self) -> bool:
        """A base model continues text (completion templates); any other format is an instruct model's."""
        return self.prompt_format == self.PromptFormat.COMPLETION

    def writes(self, language: str) -> bool:
        """Whether the model writes language; a model whose languages are not stated is taken at its word."""
        return not self.languages or language in self.languages

    def clean(self) -> None:
        if not isinstance(self.languages, list) or not all(
                isinstance(code, str) and re.fullmatch(r"[a-z]{2,3}", code) for code in self.languages):
            raise ValidationError({"languages": _("A list of ISO 639-1 language codes, e.g. [\"ru\", \"en\"].")})
        if self.backend == self.Backend.OPENAI and not self.api_model:
            raise ValidationError({"api_model": _("An API model name is required for an OpenAI-compatible backend.")})
        if self.backend == self.Backend.LOCAL and not self.model_path:
            raise ValidationError({"model_path": _("A model directory is required for a local backend.")})


class OnModelQueue:
    """A job of a model configuration (model_config) run on that model's queue (jobs.queue_for), in chunks (core.chunks)
    that only workers able to run the model take (jobs.requirements_for)."""

    def chunk_queue(self) -> str:
        from .jobs import queue_for

        return queue_for(self.model_config)

    def chunk_requirements(self):
        from .jobs import requirements_for

        return requirements_for(self.model_config)


class GenerationJob(OnModelQueue, BackgroundJob):
    """One planned batch of generation tasks run by Celery; parameters hold everything needed to rebuild the plan.

    progress_total is the plan size (planned) and progress_done the items with an outcome (ok + failed + skipped):
    jobs.py moves progress_done in the same update as those counters.
    """

    # A queued or running job with no progress for this long has lost its worker message (resume may re-send it).
    STALLED_AFTER = timedelta(minutes=5)
    progress_unit = "items"

    parameters = models.JSONField(default=dict, help_text=_("Plan and sampling parameters as submitted."))
    model_config = models.ForeignKey(ModelConfig, on_delete=models.PROTECT, related_name="jobs")
    prompt_template = models.ForeignKey(PromptTemplate, on_delete=models.PROTECT, related_name="jobs")
    seed = models.BigIntegerField(default=17)
    graph_version = models.CharField(max_length=50, blank=True, default="")
    planned = models.PositiveIntegerField(default=0)
    ok = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    failed_checks = models.PositiveIntegerField(default=0)
    prompt_tokens = models.PositiveBigIntegerField(default=0)
    completion_tokens = models.PositiveBigIntegerField(default=0)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    budget_cap = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True,
                                     help_text=_("Stop cleanly before the cost would exceed this."))

    def __str__(self) -> str:
        return f"job {self.pk} ({self.status})"

    def task_send(self) -> None:
        from medsyn_site.core.jobs import task_send

        from .tasks import run_generation_job

        task_send(run_generation_job, args=[self.pk], queue=self.chunk_queue())

    # A chunked job (core.chunks): its items are shared out in chunks over the workers of its queue.
    def chunk_execute(self, chunk) -> bool:
        from .jobs import job_chunk_execute

        return job_chunk_execute(self, chunk)

    def chunks_finish(self) -> None:
        from .jobs import job_chunks_finish

        job_chunks_finish(self)

    @property
    def items_left(self) -> int:
        """Items a run would still do: the pending ones and the failed ones (resume retries them); the whole plan
        before the worker has built the items. Skipped items (a duplicate, a prompt too long, the cost cap) stay."""
        return max(0, self.planned - self.ok - self.skipped)

    @property
    def resumable(self) -> bool:
        """A stopped job (failed, cancelled, or done with failed items) with items left, or a stalled one (its
        message lost): never a job whose every item has its outcome, which resume would only send round again."""
        return self.stalled or (self.finished and self.items_left > 0)

    @property
    def items_per_second(self) -> float | None:
        if not self.started_at or not self.progress_done:
            return None
        end = self.finished_at or self.updated_at
        seconds = (end - self.started_at).total_seconds()
        return round(self.progress_done / seconds, 2) if seconds > 0 else None


class GenerationItem(models.Model):
    """One task of a job; done exactly once (the produced note is written with the done status)."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")
        SKIPPED = "skipped", _("Skipped")

    job = models.ForeignKey(GenerationJob, on_delete=models.CASCADE, related_name="items")
    index = models.PositiveIntegerField()
    category = models.CharField(max_length=3)
    donor_code = models.CharField(max_length=16, blank=True, default="")
    disease_name = models.TextField(blank=True, default="")  # the graph's name of the category, as the prompt got it
    symptoms = models.JSONField(default=list)
    example_note = models.ForeignKey(Note, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    example_text = models.TextField(blank=True, default="")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING, db_index=True)
    error = models.TextField(blank=True, default="")
    note = models.OneToOneField(Note, null=True, blank=True, on_delete=models.SET_NULL, related_name="generation_item")
    prompt_system = models.TextField(blank=True, default="")
    prompt_user = models.TextField(blank=True, default="")
    prompt_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    latency_s = models.FloatField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["job", "index"]
        constraints = [models.UniqueConstraint(fields=["job", "index"], name="generation_item_job_index_unique")]

    def __str__(self) -> str:
        return f"job {self.job_id} item {self.index} ({self.status})"


class SymptomProposal(models.Model):
    """A symptom an LLM extracted from real notes of a category: a proposed HAS_SYMPTOM edge (source "llm")
    that enters the graph only when a researcher accepts it."""

    class Status(models.TextChoices):
        PROPOSED = "proposed", _("Proposed")
        ACCEPTED = "accepted", _("Accepted")
        REJECTED = "rejected", _("Rejected")

    category = models.CharField(max_length=3)
    symptom_key = models.CharField(max_length=200)
    symptom = models.CharField(max_length=200)
    note_ids = models.JSONField(default=list)  # the real notes it was extracted from (each counted once)
    model_config = models.ForeignKey(ModelConfig, null=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.PROPOSED)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+")
    reviewed_at = models.DateTimeField(null=True, blank=True)
    graph_version = models.CharField(max_length=64, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["category", "symptom_key"]
        constraints = [models.UniqueConstraint(fields=["category", "symptom_key"], name="symptom_proposal_once")]

    def __str__(self) -> str:
        return f"{self.category} → {self.symptom} ({self.status})"

    @property
    def support(self) -> int:
        return len(self.note_ids)


class SymptomExtractionJob(OnModelQueue, BackgroundJob):
    """An LLM reads real notes of some ICD-10 categories and lists their symptoms (enrichment.py), in chunks of notes on
    its model's worker queue (core.chunks). note_ids: the notes to read, chosen when its task first runs (their
    positions are the units of its chunks, so a chunk sent again reads the same notes); notes_read: those read so far,
    each with its proposals committed as soon as it is read (a chunk run again reads only the others). Progress in
    notes."""

    progress_unit = "notes"

    model_config = models.ForeignKey(ModelConfig, on_delete=models.PROTECT, related_name="+")
    categories = models.JSONField(default=list)
    notes_per_category = models.PositiveIntegerField(default=20)
    note_ids = models.JSONField(default=list)
    notes_read = models.JSONField(default=list)
    failed = models.PositiveIntegerField(default=0)  # notes the model could not answer for
    proposals_new = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"symptom extraction {self.pk} ({self.status})"

    def task_send(self) -> None:
        from medsyn_site.core.jobs import task_send

        from .tasks import run_symptom_extraction

        task_send(run_symptom_extraction, args=[self.pk], queue=self.chunk_queue())

    # A chunked job (core.chunks): its notes are shared out in chunks over the workers of its model's queue.
    def chunk_execute(self, chunk) -> bool:
        from .enrichment import extraction_chunk_execute

        return extraction_chunk_execute(self, chunk)

    def chunks_finish(self) -> None:
        from .enrichment import extraction_chunks_finish

        extraction_chunks_finish(self)


class NoteImportJob(UploadJob):
    """A notes file imported all or nothing (RuMedTop3 jsonl or MedSyn release CSV): uploaded by an admin and run
    by a Celery worker, or named by an import command on the server (file_path). Progress is in rows. An uploaded
    file is kept as the provenance of the notes it imported; a failed import deletes it (upload becomes "")."""

    class Kind(models.TextChoices):
        RUMEDTOP3 = "rumedtop3", _("Real notes: RuMedTop3 jsonl (idx, symptoms, code)")
        MEDSYN_CSV = "medsyn_csv", _("Synthetic notes: MedSyn release CSV")

    progress_unit = "rows"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    split = models.CharField(max_length=16, blank=True, default="")
    source_dataset = models.CharField(max_length=100, help_text=_("Stored on every imported note."))
    upload = models.FileField(upload_to="note_imports/", blank=True)
    file_path = models.CharField(max_length=1000, blank=True, default="",
                                 help_text=_("A file on the server an import command read (no upload)."))
    original_name = models.CharField(max_length=255)
    created = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    errors = models.JSONField(default=list)  # [{line, message}] of a file with problems

    def __str__(self) -> str:
        return f"note import {self.pk} {self.original_name} ({self.status})"

    def task_send(self) -> None:
        from medsyn_site.core.jobs import task_send

        from .tasks import run_note_import

        task_send(run_note_import, args=[self.pk], queue="default")

    @contextmanager
    def source_local(self) -> Iterator[Path]:
        """The file to import as a local path: the upload (from the shared storage), or the file an import command
        named on this server."""
        if self.upload:
            with self.upload_local() as path:
                yield path
        else:
            yield Path(self.file_path)


class NoteVersion(models.Model):
    """An earlier text of an edited note (the note itself holds the current one): originals are never lost."""

    note = models.ForeignKey(Note, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    text = models.TextField()
    checks = models.JSONField(default=dict, blank=True)  # the automatic checks of that text
    edited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    edit_reason = models.TextField(blank=True, default="")  # why it was replaced
    replaced_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "review_noteversion"
        ordering = ["note", "version"]
        constraints = [models.UniqueConstraint(fields=["note", "version"], name="note_version_once")]

    def __str__(self) -> str:
        return f"note {self.note_id} v{self.version}"
