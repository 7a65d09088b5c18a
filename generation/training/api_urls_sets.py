"""API of instruction sets, under /api/training/sets/."""

from django.urls import path

from . import api_sets

urlpatterns = [
    path("", api_sets.InstructionSetsView.as_view(), name="training-api-sets"),
    path("preview/", api_sets.InstructionSetPreviewView.as_view(), name="training-api-set-preview"),
    path("<int:pk>/", api_sets.InstructionSetView.as_view(), name="training-api-set"),
    path("<int:pk>/files/<str:name>", api_sets.InstructionSetFileView.as_view(), name="training-api-set-file"),
]
