"""Studies, their pools, assignments and ratings in Django admin, read-only: a study is set up, opened and closed and a
rating given or revised only through the assessment pages and API (services.do_*), which write the audit record."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse

from medsyn_site.admin import AuditedModelAdmin

from .models import Assignment, Rating, Study, StudyItem


@admin.register(Study)
class StudyAdmin(AuditedModelAdmin):
    list_display = ["id", "name", "state", "overlap_k", "created_by", "created_at", "opened_at", "closed_at"]
    list_filter = ["state"]
    search_fields = ["name"]

    def view_on_site(self, study: Study) -> str:
        return reverse("assessment:study_detail", args=[study.pk])


@admin.register(StudyItem)
class StudyItemAdmin(AuditedModelAdmin):
    list_display = ["id", "study", "note", "diagnosis_code", "is_synthetic", "length_band", "active_assignments"]
    list_filter = ["is_synthetic", "length_band"]
    search_fields = ["=study__id", "=note__id", "token", "diagnosis_code"]
    list_select_related = ["study"]


@admin.register(Assignment)
class AssignmentAdmin(AuditedModelAdmin):
    list_display = ["id", "study", "item", "physician", "status", "assigned_at", "answered_at"]
    list_filter = ["status"]
    search_fields = ["=study__id", "physician__username"]
    list_select_related = ["study", "item", "physician"]


@admin.register(Rating)
class RatingAdmin(AuditedModelAdmin):
    list_display = ["id", "assignment", "judged_synthetic", "confidence", "revisions", "updated_at"]
    list_filter = ["judged_synthetic", "confidence"]
    search_fields = ["=assignment__study__id", "assignment__physician__username"]
    list_select_related = ["assignment"]
