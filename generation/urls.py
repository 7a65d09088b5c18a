from django.urls import path

from . import views

app_name = "generation"
urlpatterns = [
    path("", views.home, name="home"),
    path("new/", views.new, name="new"),
    path("jobs/<int:pk>/", views.job, name="job"),
    path("jobs/<int:pk>/cancel/", views.job_cancel, name="job_cancel"),
    path("jobs/<int:pk>/resume/", views.job_resume, name="job_resume"),
    path("notes/", views.notes, name="notes"),
    path("notes/<int:pk>/", views.note, name="note"),
    path("enrichment/", views.enrichment, name="enrichment"),
    path("enrichment/<int:pk>/cancel/", views.enrichment_cancel, name="enrichment_cancel"),
    path("import/", views.note_import, name="note_import"),
    path("import/<int:pk>/", views.note_import_job, name="note_import_job"),
]
