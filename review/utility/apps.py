from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class UtilityConfig(AppConfig):
    name = "review.utility"
    label = "utility"
    verbose_name = _("Utility")
