"""Reads of curation: the queue of synthetic notes with their recall, detectability and flags."""

from __future__ import annotations

from django.db.models import Avg, Case, F, FloatField, Q, QuerySet, Value, When
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce

from generation.models import Note
from generation.selectors import synthetic_notes_filter


def _detectability() -> Avg:
    """Share of the ratings of a note (over all studies) that judged it synthetic; None when never rated."""
    judged = "study_items__assignments__rating__judged_synthetic"
    return Avg(Case(When(**{judged: True}, then=Value(1.0)), When(**{judged: False}, then=Value(0.0)),
                    output_field=FloatField()))


FLAGGED = Q(near_duplicate_of__isnull=False) | Q(memorised=True)
FLAG_FILTERS = {
    "flagged": FLAGGED,
    "duplicate": Q(near_duplicate_of__isnull=False),
    "memorised": Q(memorised=True),
    "overridden": FLAGGED & Q(flag_override=True),
    "clean": ~FLAGGED,
    "unchecked": Q(memorisation_checked_version__isnull=True) | ~Q(memorisation_checked_version=F("version")),
}
SORT_FIELDS = {"id": "id", "-id": "-id", "code": "icd_code", "recall": "recall", "-recall": "-recall",
               "-memorisation": "-memorisation_ngram", "detectability": "detectability",
               "-detectability": "-detectability"}


def curation_notes(*, filters: dict, sort: str = "id") -> QuerySet[Note]:
    """Synthetic notes for curation, filtered as CurationFilterForm.filters() says, with their symptom recall and
    detectability annotated."""
    notes = synthetic_notes_filter(code=filters.get("code", ""), model=filters.get("model", ""),
                                   variant=filters.get("variant", ""), check=filters.get("check", ""),
                                   job=filters.get("job"), generated_only=False)
    notes = notes.annotate(
        # generated notes carry their checks; notes imported from a MedSyn CSV carry the release's symptoms_recall
        recall=Coalesce(Cast(KT("metadata__checks__scores__symptom_recall"), FloatField()),
                        Cast(KT("metadata__symptoms_recall"), FloatField())),
        detectability=_detectability(),
    )
    if filters.get("state"):
        notes = notes.filter(review_state=filters["state"])
    for key, lookup in (("recall_min", "recall__gte"), ("recall_max", "recall__lte"),
                        ("detectability_min", "detectability__gte"), ("detectability_max", "detectability__lte")):
        if filters.get(key) is not None:
            notes = notes.filter(**{lookup: filters[key]})
    flag = FLAG_FILTERS.get(filters.get("flag", ""))
    if flag is not None:
        notes = notes.filter(flag)
    return notes.order_by(SORT_FIELDS.get(sort, "id"), "id")
