from django.urls import path

from . import views

app_name = "releases"
urlpatterns = [
    path("", views.releases, name="releases"),
    path("<int:pk>/", views.release_detail, name="release_detail"),
    path("<int:pk>/retry/", views.release_retry, name="release_retry"),
    path("<int:pk>/compare/", views.release_compare, name="release_compare"),
    path("<int:pk>/diff/<int:other>/", views.release_diff_page, name="release_diff"),
    path("<int:pk>/files/<path:path>", views.release_download, name="release_download"),
]
