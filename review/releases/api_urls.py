from django.urls import path

from . import api

urlpatterns = [
    path("", api.ReleasesView.as_view(), name="api-releases"),
    path("<int:pk>/", api.ReleaseView.as_view(), name="api-release"),
    path("<int:pk>/export/retry/", api.ReleaseExportRetryView.as_view(), name="api-release-export-retry"),
    path("<int:pk>/files/<path:path>", api.ReleaseDownloadView.as_view(), name="api-release-download"),
    path("<int:pk>/diff/<int:other>/", api.ReleaseDiffView.as_view(), name="api-release-diff"),
]
