"""A note's checks and edits as its pages show them: `{% load note_display %}`, then
`{% for score in meta.checks|check_scores %}`, `{% for reason in meta.checks|check_reasons %}` and
`{% for version in note|note_edits %}`, `{{ meta.prompt_variant|variant_label }}`. The words live in generation.checks
and the models' choices; these filters only hand them over."""

from __future__ import annotations

from django import template

from generation.checks import ScoreShown, check_reasons_shown, check_scores_shown
from generation.models import Note, NoteVersion, PromptTemplate

register = template.Library()


@register.filter
def check_scores(checks: dict | None) -> list[ScoreShown]:
    """The scores of a note's stored checks, each with its label, description and written value."""
    return check_scores_shown(checks if isinstance(checks, dict) else None)


@register.filter
def check_reasons(checks: dict | None) -> list[str]:
    """Why a note failed its checks, in the reader's language."""
    return check_reasons_shown(checks if isinstance(checks, dict) else None)


@register.filter
def note_edits(note: Note) -> list[NoteVersion]:
    """The earlier texts of an edited note, oldest first, each with who replaced it, when and why ([] when the note
    was never edited: no query)."""
    if note.version <= 1:
        return []
    return list(note.versions.select_related("edited_by").order_by("version"))


@register.filter
def variant_label(variant: str | None) -> str:
    """A prompt variant as a note's provenance keeps it ("symptoms_example") in words; another value as kept."""
    return str(PromptTemplate.Variant(variant).label) if variant in PromptTemplate.Variant.values else variant or ""
