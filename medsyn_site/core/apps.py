from django.apps import AppConfig


class CoreConfig(AppConfig):
    """What every domain app shares: audit records, background jobs and their progress, API errors, text tools."""

    name = "medsyn_site.core"
    label = "core"
    default_auto_field = "django.db.models.BigAutoField"
