from django.urls import path

from . import api

urlpatterns = [
    path("studies/", api.RaterStudiesView.as_view(), name="api-review-studies"),
    path("studies/<int:study_id>/next/", api.NextItemView.as_view(), name="api-review-next"),
    path("studies/<int:study_id>/submit/", api.SubmitView.as_view(), name="api-review-submit"),
    path("studies/<int:study_id>/skip/", api.SkipView.as_view(), name="api-review-skip"),
    path("studies/<int:study_id>/results/", api.ResultsView.as_view(), name="api-review-results"),
    path("studies/<int:study_id>/pool/", api.PoolView.as_view(), name="api-review-pool"),
]
