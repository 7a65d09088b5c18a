from django.contrib import admin

from .models import GraphVersion, ImportJob


@admin.register(GraphVersion)
class GraphVersionAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "source", "status", "duration_s", "content_hash")
    list_filter = ("status", "source")
    readonly_fields = [f.name for f in GraphVersion._meta.fields]


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = ("id", "created_at", "original_name", "kind", "status", "changed", "percent", "version")
    list_filter = ("status", "kind")
    readonly_fields = [f.name for f in ImportJob._meta.fields]
