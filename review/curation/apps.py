from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CurationConfig(AppConfig):
    name = "review.curation"
    label = "curation"
    verbose_name = _("Curation")

    def ready(self) -> None:
        from generation.signals import real_notes_imported

        from .scans import real_notes_imported_receiver

        real_notes_imported.connect(real_notes_imported_receiver, dispatch_uid="curation.memorisation_checks_void")
