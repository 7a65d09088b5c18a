from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class TrainingConfig(AppConfig):
    """MedSyn's fine-tuning step: instruction sets built from real notes and the graph, and LoRA training jobs."""

    name = "generation.training"
    label = "training"
    verbose_name = _("Fine-tuning")
    default_auto_field = "django.db.models.BigAutoField"
