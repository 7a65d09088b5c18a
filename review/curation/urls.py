from django.urls import path

from . import views

app_name = "curation"
urlpatterns = [
    path("", views.curation, name="curation"),
    path("notes/<int:pk>/", views.curation_note, name="curation_note"),
    path("notes/<int:pk>/edit/", views.curation_edit, name="curation_edit"),
    path("notes/<int:pk>/override/", views.curation_override, name="curation_override"),
    path("notes/<int:pk>/<slug:action>/", views.curation_transition, name="curation_transition"),
    path("bulk/", views.curation_bulk, name="curation_bulk"),
    path("scans/<slug:kind>/start/", views.scan_start, name="scan_start"),
    path("scans/<int:pk>/", views.scan_status, name="scan_status"),
]
