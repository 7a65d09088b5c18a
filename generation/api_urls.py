from django.urls import path

from . import api

urlpatterns = [
    path("plans/", api.PlanPreviewAPI.as_view(), name="generation-api-plan"),
    path("jobs/", api.JobListCreateAPI.as_view(), name="generation-api-jobs"),
    path("jobs/<int:pk>/", api.JobDetailAPI.as_view(), name="generation-api-job"),
    path("jobs/<int:pk>/cancel/", api.JobCancelAPI.as_view(), name="generation-api-job-cancel"),
    path("jobs/<int:pk>/resume/", api.JobResumeAPI.as_view(), name="generation-api-job-resume"),
    path("notes/", api.NoteListAPI.as_view(), name="generation-api-notes"),
    path("notes/<int:pk>/", api.NoteDetailAPI.as_view(), name="generation-api-note"),
]
