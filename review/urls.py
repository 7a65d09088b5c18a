from django.urls import path

from . import curation_views, views

app_name = "review"
urlpatterns = [
    path("rate/", views.rate_home, name="rate_home"),
    path("rate/<int:study_id>/", views.rate_study, name="rate_study"),
    path("rate/<int:study_id>/skip/", views.rate_skip, name="rate_skip"),
    path("rate/<int:study_id>/revise/<str:token>/", views.rate_revise, name="rate_revise"),
    path("studies/", views.studies, name="studies"),
    path("studies/<int:pk>/", views.study_detail, name="study_detail"),
    path("studies/<int:pk>/results/", views.study_results_page, name="study_results"),
    path("studies/<int:pk>/export/<str:kind>", views.study_export, name="study_export"),
    path("curation/", curation_views.curation, name="curation"),
    path("curation/notes/<int:pk>/", curation_views.curation_note, name="curation_note"),
    path("curation/notes/<int:pk>/edit/", curation_views.curation_edit, name="curation_edit"),
    path("curation/notes/<int:pk>/override/", curation_views.curation_override, name="curation_override"),
    path("curation/notes/<int:pk>/<slug:action>/", curation_views.curation_transition, name="curation_transition"),
    path("curation/bulk/", curation_views.curation_bulk, name="curation_bulk"),
    path("curation/scans/<slug:kind>/start/", curation_views.scan_start, name="scan_start"),
    path("curation/scans/<int:pk>/", curation_views.scan_status, name="scan_status"),
    path("releases/", curation_views.releases, name="releases"),
    path("releases/<int:pk>/", curation_views.release_detail, name="release_detail"),
    path("releases/<int:pk>/retry/", curation_views.release_retry, name="release_retry"),
    path("releases/<int:pk>/diff/<int:other>/", curation_views.release_diff_page, name="release_diff"),
    path("releases/<int:pk>/files/<path:path>", curation_views.release_download, name="release_download"),
]
