from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class ReviewConfig(AppConfig):
    """The history of the tables the review domain apps (assessment, curation, releases) took over.

    review was one app until its models moved into review.assessment, review.curation, review.releases,
    generation (NoteVersion) and medsyn_site.core (AuditRecord); its migrations still create those tables on a
    new database and hand them over (0003), so an existing database migrates without losing a row. It has no
    models and no code of its own.
    """

    name = "review"
    verbose_name = _("Review (table history)")
