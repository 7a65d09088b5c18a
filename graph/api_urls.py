from django.urls import path

from . import api

urlpatterns = [
    path("search/", api.SearchAPI.as_view(), name="graph-api-search"),
    path("code/<str:key>/", api.CodeAPI.as_view(), name="graph-api-code"),
    path("symptom/<str:key>/", api.SymptomAPI.as_view(), name="graph-api-symptom"),
    path("neighbourhood/<str:label>/<str:key>/", api.NeighbourhoodAPI.as_view(), name="graph-api-neighbourhood"),
    path("stats/", api.StatsAPI.as_view(), name="graph-api-stats"),
]
