"""Reads of curation: the queue of synthetic notes with their recall, detectability and flags, and the one definition
of what keeps an approved note out of releases (HELD_BACK), read by the release preview, release creation, the
queue's filters and the note pane alike."""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Avg, Case, Count, F, FloatField, Q, QuerySet, Value, When
from django.db.models.fields.json import KT
from django.db.models.functions import Cast, Coalesce

from generation.models import Note
from generation.selectors import synthetic_notes_filter
from medsyn_site.roles import origin_seers

from .models import NoteCuration, ReviewState, ScanJob

# The queue's default: what waits for a curator (notes a model wrote, not yet submitted, and notes submitted for
# review). A filter value beside the review states, never stored.
TO_REVIEW = "to_review"
TO_REVIEW_STATES = (ReviewState.GENERATED, ReviewState.PENDING_REVIEW)

APPROVED = Q(curation__state=ReviewState.APPROVED)
MEMORISED = Q(curation__memorised=True)
DUPLICATE = Q(curation__near_duplicate_of__isnull=False)
FLAGGED = MEMORISED | DUPLICATE
OVERRIDDEN = Q(curation__flag_override=True)
MEMORISATION_CHECKED = Q(curation__memorisation_checked_version=F("version"))
DUPLICATES_CHECKED = Q(curation__duplicates_checked_version=F("version"))

# Why an approved synthetic note stays out of releases; releasable = approved and none applies. A scan's check
# counts only for the text it read (the note's version), and a flag only until a curator overrides it. Counts
# put a note under the first reason that applies.
HELD_BACK: dict[str, Q] = {
    "not checked for memorisation at the current version (run the memorisation scan)": ~MEMORISATION_CHECKED,
    "not checked for near duplicates at the current version (run the near-duplicate scan)": ~DUPLICATES_CHECKED,
    "memorised a real note (flag not overridden)": MEMORISED & ~OVERRIDDEN,
    "near duplicate of an earlier note (flag not overridden)": DUPLICATE & ~OVERRIDDEN,
}


def _held_back_reason() -> Case:
    """The first HELD_BACK reason that applies to a note, "" when none does."""
    return Case(*(When(condition, then=Value(reason)) for reason, condition in HELD_BACK.items()), default=Value(""))


def notes_releasable(notes: QuerySet[Note]) -> QuerySet[Note]:
    """The notes of `notes` a release may take: approved, and no HELD_BACK reason applies."""
    return notes.filter(APPROVED).alias(held_back=_held_back_reason()).filter(held_back="")


def notes_held_back(notes: QuerySet[Note]) -> QuerySet[Note]:
    """The approved notes of `notes` a release leaves out."""
    return notes.filter(APPROVED).alias(held_back=_held_back_reason()).exclude(held_back="")


def held_back_counts(notes: QuerySet[Note]) -> dict[str, int]:
    """Approved notes of `notes` a release leaves out, by their first reason (reasons with none are omitted)."""
    rows = (Note.objects.filter(pk__in=notes_held_back(notes).values("pk")).annotate(held_back=_held_back_reason())
            .values("held_back").annotate(n=Count("pk")).order_by())
    counts = {row["held_back"]: row["n"] for row in rows}
    return {reason: counts[reason] for reason in HELD_BACK if reason in counts}


def note_curation(note: Note) -> NoteCuration:
    """The note's curation row, or an unsaved one for a note that has none yet: generated, unflagged, unchecked."""
    try:
        return note.curation
    except NoteCuration.DoesNotExist:
        return NoteCuration(note=note)


def release_blockers(note: Note) -> list[str]:
    """Why this synthetic note cannot go into a release now (an empty list: it can), by HELD_BACK."""
    curation = note_curation(note)
    if curation.state != ReviewState.APPROVED:
        return [f"not approved ({curation.get_state_display()})"]
    applies = Note.objects.filter(pk=note.pk).aggregate(
        **{f"reason_{i}": Count("pk", filter=condition) for i, condition in enumerate(HELD_BACK.values())})
    return [reason for i, reason in enumerate(HELD_BACK) if applies[f"reason_{i}"]]


def review_state() -> Coalesce:
    """A note's review state; a note without a curation row is generated."""
    return Coalesce("curation__state", Value(ReviewState.GENERATED))


def notes_in_states(notes: QuerySet[Note], states: Iterable[str]) -> QuerySet[Note]:
    """The notes of `notes` in one of these review states (a bulk action's eligible notes)."""
    return notes.alias(curation_state=review_state()).filter(curation_state__in=states)


def _detectability() -> Avg:
    """Share of the blind ratings of a note (over all studies) that judged it synthetic; None when never rated.
    Ratings by someone who can see origins (roles.origin_seers) are not blind and do not count."""
    judged = "study_items__assignments__rating__judged_synthetic"
    return Avg(Case(When(**{judged: True}, then=Value(1.0)), When(**{judged: False}, then=Value(0.0)),
                    output_field=FloatField()),
               filter=~Q(study_items__assignments__physician__in=origin_seers()))


FLAG_FILTERS = {
    "flagged": FLAGGED,
    "duplicate": DUPLICATE,
    "memorised": MEMORISED,
    "overridden": FLAGGED & OVERRIDDEN,
    "clean": ~FLAGGED,
    "unchecked": ~MEMORISATION_CHECKED | ~DUPLICATES_CHECKED,
}
RELEASE_FILTERS = {"releasable": notes_releasable, "held_back": notes_held_back}
SORT_FIELDS = {"id": "id", "-id": "-id", "code": "icd_code", "recall": "recall", "-recall": "-recall",
               "-memorisation": "-curation__memorisation_ngram", "detectability": "detectability",
               "-detectability": "-detectability"}


def curation_notes(*, filters: dict, sort: str = "id") -> QuerySet[Note]:
    """Synthetic notes for curation, filtered as CurationFilterForm.filters() says, with their review state (a note
    without a curation row is generated), symptom recall and detectability annotated and their curation row joined."""
    notes = synthetic_notes_filter(code=filters.get("code", ""), model=filters.get("model", ""),
                                   variant=filters.get("variant", ""), check=filters.get("check", ""),
                                   job=filters.get("job"), generated_only=False)
    notes = notes.select_related("curation").annotate(
        review_state=review_state(),
        # generated notes carry their checks; notes imported from a MedSyn CSV carry the release's symptoms_recall
        recall=Coalesce(Cast(KT("metadata__checks__scores__symptom_recall"), FloatField()),
                        Cast(KT("metadata__symptoms_recall"), FloatField())),
        detectability=_detectability(),
    )
    if filters.get("state") == TO_REVIEW:
        notes = notes.filter(review_state__in=TO_REVIEW_STATES)
    elif filters.get("state"):
        notes = notes.filter(review_state=filters["state"])
    for key, lookup in (("recall_min", "recall__gte"), ("recall_max", "recall__lte"),
                        ("detectability_min", "detectability__gte"), ("detectability_max", "detectability__lte")):
        if filters.get(key) is not None:
            notes = notes.filter(**{lookup: filters[key]})
    flag = filters.get("flag", "")
    if flag in FLAG_FILTERS:
        notes = notes.filter(FLAG_FILTERS[flag])
    elif flag in RELEASE_FILTERS:
        notes = RELEASE_FILTERS[flag](notes)
    return notes.order_by(SORT_FIELDS.get(sort, "id"), "id")


def scans_latest() -> dict[str, ScanJob | None]:
    """The latest scan of each kind (None when it never ran), for the queue's scan panel."""
    return {kind: ScanJob.objects.filter(kind=kind).order_by("-id").first() for kind in ScanJob.Kind.values}
