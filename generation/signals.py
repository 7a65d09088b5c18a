"""Signals generation sends to the apps that build on it (generation never imports them)."""

from __future__ import annotations

from django.dispatch import Signal

# New real notes were imported. Sent inside the import's transaction, so what receivers write commits or rolls back
# with the notes. Arguments: instance (the first new real note), count (real notes created), actor (the user who
# imported them, or None for a worker or a command). review.curation voids every memorisation check: those were
# made against the real notes of before.
real_notes_imported = Signal()
