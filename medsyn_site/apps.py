from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class MedsynSiteConfig(AppConfig):
    name = "medsyn_site"
    verbose_name = _("MedSyn Studio")
