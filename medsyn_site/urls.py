from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_safe
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from . import accounts, views
from .language import language_set

ICON_SVG = ('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
            '<rect width="16" height="16" rx="3" fill="#1f5f8b"/></svg>')


@require_safe
@cache_control(max_age=86400, public=True)
def favicon(request: HttpRequest) -> HttpResponse:
    """The site's icon at the address browsers ask for on their own (the admin's pages name no icon)."""
    return HttpResponse(ICON_SVG, content_type="image/svg+xml")


urlpatterns = [
    path("favicon.ico", favicon, name="favicon"),
    path("", views.home, name="home"),
    path("healthz", views.healthz, name="healthz"),
    path("status/", views.status, name="status"),
    path("accounts/login/", auth_views.LoginView.as_view(redirect_authenticated_user=True), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/password/", auth_views.PasswordChangeView.as_view(), name="password_change"),
    path("accounts/password/done/", auth_views.PasswordChangeDoneView.as_view(), name="password_change_done"),
    path("accounts/profile/", accounts.profile, name="profile"),
    path("language/", language_set, name="language_set"),
    path("accounts/profile/token/revoke/", accounts.profile_token_revoke, name="profile_token_revoke"),
    path("accounts/profile/token/new/", accounts.profile_token_renew, name="profile_token_renew"),
    path("admin/", admin.site.urls),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file (?script): no inline <script>, as the CSP requires.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/graph/", include("graph.api_urls")),
    path("api/generation/", include("generation.api_urls")),
    path("api/training/", include("generation.training.api_urls")),
    path("api/review/curation/", include("review.curation.api_urls")),
    path("api/review/releases/", include("review.releases.api_urls")),
    path("api/utility/", include("review.utility.api_urls")),
    path("api/review/", include("review.assessment.api_urls")),
    path("api/", include("medsyn_site.api_urls")),
    path("graph/", include("graph.urls")),
    path("review/curation/", include("review.curation.urls")),
    path("review/releases/", include("review.releases.urls")),
    path("review/utility/", include("review.utility.urls")),
    path("review/", include("review.assessment.urls")),
    path("generation/", include("generation.urls")),
    path("training/", include("generation.training.urls")),
]
