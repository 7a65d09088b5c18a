"""Test data for releases: approved, scanned notes as the curation actions and scans leave them."""

from __future__ import annotations

from generation.models import Note
from review.curation.services import do_transition_note
from tests.review.curation.factories import NoteCurationFactory


def approve(curator, *notes: Note, checked: bool = True) -> None:
    """Submit and approve notes; checked: as if both scans had passed them at their current version."""
    for note in notes:
        do_transition_note(actor=curator, note=note, action="submit")
        do_transition_note(actor=curator, note=note, action="approve")
        if checked:
            NoteCurationFactory(note=note, scanned=True)
