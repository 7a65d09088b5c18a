"""Releases, their snapshot rows and exports in Django admin, read-only: a release is created (and its export retried)
only through the release pages and API (services.do_*), which write the audit record; a sealed release is immutable
(database triggers)."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse

from medsyn_site.admin import AuditedModelAdmin

from .models import Release, ReleaseExport, ReleaseNote


@admin.register(Release)
class ReleaseAdmin(AuditedModelAdmin):
    list_display = ["id", "name", "version", "note_count", "licence", "include_real", "created_by", "created_at"]
    list_filter = ["licence", "include_real"]
    search_fields = ["name", "content_sha256"]

    def view_on_site(self, release: Release) -> str:
        return reverse("releases:release_detail", args=[release.pk])


@admin.register(ReleaseNote)
class ReleaseNoteAdmin(AuditedModelAdmin):
    list_display = ["id", "release", "idx", "note", "note_version", "icd_code"]
    search_fields = ["=release__id", "=note__id"]
    list_select_related = ["release"]


@admin.register(ReleaseExport)
class ReleaseExportAdmin(AuditedModelAdmin):
    list_display = ["id", "release", "status", "folder", "created_at"]
    list_filter = ["status"]
    list_select_related = ["release"]
