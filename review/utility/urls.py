"""Pages of utility evaluations, under /review/utility/ (namespace "utility")."""

from django.urls import path

from . import views

app_name = "utility"

urlpatterns = [
    path("", views.evaluations, name="evaluations"),
    path("new/", views.evaluation_new, name="evaluation_new"),
    path("<int:pk>/", views.evaluation, name="evaluation"),
    path("<int:pk>/cancel/", views.evaluation_cancel, name="evaluation_cancel"),
    path("<int:pk>/repeat/", views.evaluation_repeat, name="evaluation_repeat"),
    path("<int:pk>/result.json", views.evaluation_json, name="evaluation_json"),
    path("<int:pk>/metrics.csv", views.evaluation_csv, {"kind": "metrics"}, name="evaluation_metrics_csv"),
    path("<int:pk>/per-code.csv", views.evaluation_csv, {"kind": "per-code"}, name="evaluation_per_code_csv"),
    path("sets/", views.evaluation_sets, name="sets"),
    path("sets/<int:pk>/notes.jsonl", views.evaluation_set_download, name="set_download"),
]
