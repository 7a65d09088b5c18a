from django.contrib import admin

from medsyn_site.admin import AuditedModelAdmin

from .models import GraphVersion, ImportJob


@admin.register(GraphVersion)
class GraphVersionAdmin(AuditedModelAdmin):
    """Read-only: a graph version is published by an import (graph.services) and is what generation plans cite."""

    list_display = ("id", "created_at", "source", "status", "duration_s", "content_hash")
    list_filter = ("status", "source")


@admin.register(ImportJob)
class ImportJobAdmin(AuditedModelAdmin):
    """Read-only: an import runs through the upload page or the import commands."""

    list_display = ("id", "created_at", "original_name", "kind", "status", "changed", "percent", "version")
    list_filter = ("status", "kind")
