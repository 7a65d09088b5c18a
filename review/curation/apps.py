from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CurationConfig(AppConfig):
    name = "review.curation"
    label = "curation"
    verbose_name = _("Curation")
