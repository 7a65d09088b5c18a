from django.urls import path

from . import views

app_name = "graph"
urlpatterns = [
    path("", views.search, name="search"),
    path("code/<str:key>/", views.code, name="code"),
    path("symptom/<str:key>/", views.symptom, name="symptom"),
    path("node/<str:label>/<str:key>/", views.neighbourhood, name="neighbourhood"),
    path("stats/", views.stats, name="stats"),
    path("import/", views.import_upload, name="import_upload"),
    path("import/<int:pk>/", views.import_job, name="import_job"),
]
