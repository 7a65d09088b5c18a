"""Pages of fine-tuning: instruction sets (urls_sets) and fine-tuning jobs (urls_finetune)."""

from django.urls import include, path

app_name = "training"

urlpatterns = [
    path("sets/", include("generation.training.urls_sets")),
    path("jobs/", include("generation.training.urls_finetune")),
]
