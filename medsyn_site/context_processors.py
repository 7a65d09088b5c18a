"""Navigation that follows the user's role, and the banner naming any component that is down."""

from __future__ import annotations

from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext_lazy as _

from medsyn_site.health import cached_components
from medsyn_site.roles import sees_origins, user_roles

# (url name, label, permission needed); an entry whose URL is not wired yet is left out.
NAVIGATION = (
    ("graph:search", _("Knowledge graph"), "medsyn_site.browse_graph"),
    ("generation:home", _("Generation"), "medsyn_site.run_generation"),
    ("training:finetune_jobs", _("Fine-tuning"), "medsyn_site.run_generation"),
    ("assessment:rate_home", _("Rate notes"), "medsyn_site.rate_notes"),
    ("assessment:studies", _("Studies"), "medsyn_site.manage_studies"),
    ("curation:curation", _("Curation"), "medsyn_site.curate_notes"),
    ("releases:releases", _("Releases"), "medsyn_site.download_releases"),
    ("utility:evaluations", _("Utility"), "medsyn_site.run_generation"),
    ("status", _("System status"), "medsyn_site.view_status"),
)


def navigation(request: HttpRequest) -> dict:
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return {"nav_items": [], "user_roles": []}
    items = []
    blind = not sees_origins(user)  # someone who sees origins is refused as a rater: no "Rate notes" to lead there
    for url_name, label, permission in NAVIGATION:
        if not user.has_perm(permission) or (permission == "medsyn_site.rate_notes" and not blind):
            continue
        try:
            url = reverse(url_name)
        except NoReverseMatch:
            continue
        items.append({"url": url, "label": label, "name": url_name, "active": request.path.startswith(url)})
    if user.is_staff:
        items.append({"url": reverse("admin:index"), "label": _("Admin"), "name": "admin", "active": False})
    return {"nav_items": items, "user_roles": user_roles(user)}


def component_banner(request: HttpRequest) -> dict:
    if request.path.startswith("/static/"):
        return {}
    down = [component for component in cached_components() if not component.ok]
    return {"components_down": down}
