from django.urls import path

from . import api

urlpatterns = [
    path("notes/", api.CurationQueueView.as_view(), name="api-curation-notes"),
    path("notes/<int:pk>/actions/", api.NoteActionView.as_view(), name="api-curation-action"),
    path("bulk/", api.BulkView.as_view(), name="api-curation-bulk"),
    path("scans/<slug:kind>/", api.ScanStartView.as_view(), name="api-curation-scan-start"),
    path("scans/<int:pk>/status/", api.ScanStatusView.as_view(), name="api-curation-scan"),
]
