"""Pages of fine-tuning jobs, under /training/jobs/ (namespace "training")."""

from django.urls import path

from . import views_finetune

urlpatterns = [
    path("", views_finetune.jobs, name="finetune_jobs"),
    path("new/", views_finetune.job_new, name="finetune_new"),
    path("<int:pk>/", views_finetune.job, name="finetune_job"),
    path("<int:pk>/cancel/", views_finetune.job_cancel, name="finetune_cancel"),
    path("<int:pk>/adapter.zip", views_finetune.job_adapter, name="finetune_adapter"),
]
