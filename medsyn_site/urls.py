from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("status/", views.status, name="status"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/graph/", include("graph.api_urls")),
    path("api/generation/", include("generation.api_urls")),
    path("api/review/curation/", include("review.curation.api_urls")),
    path("api/review/releases/", include("review.releases.api_urls")),
    path("api/review/", include("review.assessment.api_urls")),
    path("api/", include("medsyn_site.api_urls")),
    path("graph/", include("graph.urls")),
    path("review/curation/", include("review.curation.urls")),
    path("review/releases/", include("review.releases.urls")),
    path("review/", include("review.assessment.urls")),
    path("generation/", include("generation.urls")),
]
