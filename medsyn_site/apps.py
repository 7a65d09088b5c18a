from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MedsynSiteConfig(AppConfig):
    name = "medsyn_site"
    verbose_name = _("MedSyn Studio")

    def ready(self) -> None:
        # Connects the receivers that revoke a user's API token when their password changes, in every process.
        from medsyn_site import accounts  # noqa: F401
