"""API of utility evaluations, under /api/utility/."""

from django.urls import path

from . import api

urlpatterns = [
    path("evaluations/", api.UtilityEvaluationsAPI.as_view(), name="utility-api-evaluations"),
    path("evaluations/<int:pk>/", api.UtilityEvaluationAPI.as_view(), name="utility-api-evaluation"),
    path("evaluations/<int:pk>/result/", api.UtilityResultAPI.as_view(), name="utility-api-evaluation-result"),
    path("evaluations/<int:pk>/cancel/", api.UtilityCancelAPI.as_view(), name="utility-api-evaluation-cancel"),
    path("sets/", api.EvaluationSetsAPI.as_view(), name="utility-api-sets"),
    path("sets/<int:pk>/", api.EvaluationSetAPI.as_view(), name="utility-api-set"),
]
