"""API of fine-tuning jobs, under /api/training/jobs/."""

from django.urls import path

from . import api_finetune

urlpatterns = [
    path("", api_finetune.FineTuneJobsAPI.as_view(), name="training-api-jobs"),
    path("<int:pk>/", api_finetune.FineTuneJobAPI.as_view(), name="training-api-job"),
    path("<int:pk>/cancel/", api_finetune.FineTuneCancelAPI.as_view(), name="training-api-job-cancel"),
    path("<int:pk>/adapter/", api_finetune.FineTuneAdapterAPI.as_view(), name="training-api-job-adapter"),
]
