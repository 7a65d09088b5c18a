"""Notes (real and synthetic), versioned prompt templates and the model configurations admins edit."""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils.translation import gettext_lazy as _

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
    """How to reach one language model: an OpenAI-compatible endpoint or a local transformers directory."""

    class Backend(models.TextChoices):
        OPENAI = "openai", _("OpenAI-compatible API")
        LOCAL = "local", _("Local transformers model")

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
    prompt_format = models.CharField(max_length=8, choices=PromptFormat.choices, default=PromptFormat.AUTO)
    temperature = models.FloatField(default=0.7, validators=[MinValueValidator(0.0), MaxValueValidator(2.0)])
    top_p = models.FloatField(default=0.95, validators=[MinValueValidator(0.0), MaxValueValidator(1.0)])
    max_new_tokens = models.PositiveIntegerField(default=512, validators=[MinValueValidator(1)])
    batch_size = models.PositiveIntegerField(default=8, validators=[MinValueValidator(1)])
    timeout_seconds = models.FloatField(default=120.0, validators=[MinValueValidator(0.01)])
    max_retries = models.PositiveIntegerField(default=5)
    backoff_initial_seconds = models.FloatField(default=1.0, validators=[MinValueValidator(0.0)])
    backoff_max_seconds = models.FloatField(default=60.0, validators=[MinValueValidator(0.0)])
    price_per_1k_tokens = models.DecimalField(max_digits=10, decimal_places=6, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        if self.backend == self.Backend.OPENAI and not self.api_model:
            raise ValidationError({"api_model": _("An API model name is required for an OpenAI-compatible backend.")})
        if self.backend == self.Backend.LOCAL and not self.model_path:
            raise ValidationError({"model_path": _("A model directory is required for a local backend.")})
