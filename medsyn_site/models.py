from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Access(models.Model):
    """Holder of the product-wide permissions that roles are made of; it stores no rows."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("browse_graph", _("Browse the Medical Knowledge Graph")),
            ("manage_graph", _("Import and edit the Medical Knowledge Graph")),
            ("run_generation", _("Plan and launch generation jobs")),
            ("rate_notes", _("Rate notes in blind assessment studies")),
            ("manage_studies", _("Set up assessment studies")),
            ("view_results", _("See assessment results and generation provenance")),
            ("curate_notes", _("Review, approve and reject synthetic notes")),
            ("manage_releases", _("Create and publish dataset releases")),
            ("download_releases", _("Download dataset releases")),
            ("view_status", _("See the system status page")),
        ]

    def __str__(self) -> str:
        return "MedSyn Studio permissions"


class Preference(models.Model):
    """What a user chose for themselves: the language of the interface (empty: the browser's)."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="preference")
    language = models.CharField(_("language"), max_length=8, blank=True, choices=settings.LANGUAGES)

    def __str__(self) -> str:
        return f"{self.user} · {self.language or '-'}"
