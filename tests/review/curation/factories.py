"""Test data for curation: a note's curation row as the actions and scans would leave it."""

from __future__ import annotations

import factory

from review.curation.models import NoteCuration


class NoteCurationFactory(factory.django.DjangoModelFactory):
    """Sets the given fields on the note's curation row, creating the row when the note has none yet.

    scanned=True: both scans passed the note's current text (memorisation and near duplicates checked at its
    version), as a release needs.
    """

    class Meta:
        model = NoteCuration

    class Params:
        scanned = factory.Trait(memorisation_checked_version=factory.SelfAttribute("note.version"),
                                duplicates_checked_version=factory.SelfAttribute("note.version"))

    @classmethod
    def _create(cls, model_class: type[NoteCuration], *args: object, note: object, **fields: object) -> NoteCuration:
        curation, _created = model_class.objects.update_or_create(note=note, defaults=fields)
        return curation
