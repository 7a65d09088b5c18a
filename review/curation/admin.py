"""Curation rows and scans in Django admin, read-only: a review state, a flag or an override changes only through the
curation actions (services.do_*), which write its audit record."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse

from medsyn_site.admin import AuditedModelAdmin

from .models import NoteCuration, ScanJob


@admin.register(NoteCuration)
class NoteCurationAdmin(AuditedModelAdmin):
    list_display = ["note", "state", "memorised", "near_duplicate_of", "flag_override"]
    list_filter = ["state", "memorised", "flag_override"]
    search_fields = ["=note__id", "note__icd_code"]
    list_select_related = ["note"]

    def view_on_site(self, curation: NoteCuration) -> str:
        return reverse("curation:curation_note", args=[curation.note_id])


@admin.register(ScanJob)
class ScanJobAdmin(AuditedModelAdmin):
    list_display = ["id", "kind", "status", "flagged", "created_at"]
    list_filter = ["kind", "status"]
