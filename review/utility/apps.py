from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class UtilityConfig(AppConfig):
    name = "review.utility"
    label = "utility"
    verbose_name = _("Utility")

    def ready(self) -> None:
        from medsyn_site.core.sections import release_card_sections, release_page_sections

        from .sections import utility_card_section, utility_release_page_section

        release_card_sections.register(utility_card_section)
        release_page_sections.register(utility_release_page_section)
