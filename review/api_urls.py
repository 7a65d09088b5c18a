from django.urls import path

from . import api, curation_api

urlpatterns = [
    path("studies/", api.RaterStudiesView.as_view(), name="api-review-studies"),
    path("studies/<int:study_id>/next/", api.NextItemView.as_view(), name="api-review-next"),
    path("studies/<int:study_id>/submit/", api.SubmitView.as_view(), name="api-review-submit"),
    path("studies/<int:study_id>/skip/", api.SkipView.as_view(), name="api-review-skip"),
    path("studies/<int:study_id>/results/", api.ResultsView.as_view(), name="api-review-results"),
    path("curation/notes/", curation_api.CurationQueueView.as_view(), name="api-curation-notes"),
    path("curation/notes/<int:pk>/actions/", curation_api.NoteActionView.as_view(), name="api-curation-action"),
    path("curation/bulk/", curation_api.BulkView.as_view(), name="api-curation-bulk"),
    path("curation/scans/<slug:kind>/", curation_api.ScanStartView.as_view(), name="api-curation-scan-start"),
    path("curation/scans/<int:pk>/status/", curation_api.ScanStatusView.as_view(), name="api-curation-scan"),
    path("releases/", curation_api.ReleasesView.as_view(), name="api-releases"),
    path("releases/<int:pk>/", curation_api.ReleaseView.as_view(), name="api-release"),
    path("releases/<int:pk>/files/<path:path>", curation_api.ReleaseDownloadView.as_view(),
         name="api-release-download"),
    path("releases/<int:pk>/diff/<int:other>/", curation_api.ReleaseDiffView.as_view(), name="api-release-diff"),
]
