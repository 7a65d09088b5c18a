"""API of fine-tuning: instruction sets (api_sets) and fine-tuning jobs (api_finetune)."""

from django.urls import include, path

urlpatterns = [
    path("sets/", include("generation.training.api_urls_sets")),
    path("jobs/", include("generation.training.api_urls_finetune")),
]
