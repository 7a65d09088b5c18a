"""Reads for the generation app."""

from __future__ import annotations

from django.db.models import QuerySet

from .models import Note, PromptTemplate


def prompt_template_current(*, variant: str, language: str, name: str | None = None) -> PromptTemplate:
    """The current version of a named template, or of the default template for variant and language."""
    return PromptTemplate.objects.get(name=name or f"default-{variant}-{language}", is_current=True)


def prompt_template_versions(*, name: str) -> QuerySet[PromptTemplate]:
    return PromptTemplate.objects.filter(name=name).order_by("-version")


def real_notes_for_category(*, icd_category: str) -> QuerySet[Note]:
    return Note.objects.filter(origin=Note.Origin.REAL, icd_category=icd_category)
