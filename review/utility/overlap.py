"""Evaluation notes never reach training: copies and near duplicates of them are found, counted and left out.

Two kinds of overlap, both by the product's one definition of each:
- exact: the same normalised text (medsyn_site.core.text.content_hash: NFC, whitespace runs collapsed);
- near duplicate: review.curation.dedup.near_duplicates (MinHash LSH over word 3-shingles, verified Jaccard >= 0.8),
  run over the evaluation notes and one training source together. A training note counts when its group of near
  duplicates holds an evaluation note; a group is connected by verified pairs, so a training note may join an
  evaluation note through another training note (a repeat visit written twice): leaving both out is the safe side.
Synthetic notes are also checked for memorisation of an evaluation note (generation.memorisation, the same test the
generation checks and the curation scan apply to real notes).

Real training notes overlapping the evaluation set mean the two sets were drawn wrongly: above max_share of the
evaluation notes the run is refused (OverlapRefused); below, the overlapping real notes are left out. Synthetic
notes that copy, nearly copy or memorised an evaluation note are left out whatever their number (a generator that
saw evaluation notes as examples must not be rewarded for it); the report counts them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from generation.memorisation import MemorisationIndex, MemorisationThresholds
from medsyn_site.core.text import content_hash
from review.curation.dedup import DuplicateThresholds, near_duplicates

from .datasets import LabelledNote

EXACT, NEAR, MEMORISED = "exact", "near_duplicate", "memorised"
KEYS_REPORTED = 50  # excluded notes named in the report (the counts are complete)


@dataclass(frozen=True)
class OverlapThresholds:
    """max_share 0.01: RuMedTop3's own splits stay below it (no dev note occurs in train; 6 of its 848 dev notes,
    0.7 %, have a near duplicate there: repeat visits), while a split drawn wrongly overlaps far more."""

    max_share: float = 0.01
    duplicates: DuplicateThresholds = field(default_factory=DuplicateThresholds)
    memorisation: MemorisationThresholds = field(default_factory=MemorisationThresholds)

    def describe(self) -> dict:
        return {"max_share": self.max_share, "duplicates": asdict(self.duplicates),
                "memorisation": asdict(self.memorisation)}


@dataclass
class OverlapReport:
    """What the check found. real_excluded / synthetic_excluded: note index -> reason (EXACT, NEAR, MEMORISED)."""

    evaluation_notes: int
    real_notes: int
    synthetic_notes: int
    evaluation_overlapped: int  # evaluation notes with a copy or a near duplicate among the real training notes
    max_share: float
    real_excluded: dict[int, str] = field(default_factory=dict)
    synthetic_excluded: dict[int, str] = field(default_factory=dict)
    real_keys: list[str] = field(default_factory=list)
    synthetic_keys: list[str] = field(default_factory=list)

    @property
    def share(self) -> float:
        return self.evaluation_overlapped / self.evaluation_notes if self.evaluation_notes else 0.0

    @property
    def refused(self) -> bool:
        return self.share > self.max_share

    def counts(self, excluded: dict[int, str]) -> dict[str, int]:
        return {reason: sum(1 for found in excluded.values() if found == reason) for reason in (EXACT, NEAR, MEMORISED)}

    def record(self) -> dict:
        """The whole report as JSON (describe() names only the first excluded notes): from_record gives it back."""
        return {**asdict(self), "real_excluded": {str(j): reason for j, reason in self.real_excluded.items()},
                "synthetic_excluded": {str(j): reason for j, reason in self.synthetic_excluded.items()}}

    @classmethod
    def from_record(cls, record: dict) -> OverlapReport:
        return cls(**{**record, "real_excluded": {int(j): reason for j, reason in record["real_excluded"].items()},
                      "synthetic_excluded": {int(j): reason
                                             for j, reason in record["synthetic_excluded"].items()}})

    def describe(self) -> dict:
        return {"evaluation_notes": self.evaluation_notes, "evaluation_overlapped": self.evaluation_overlapped,
                "share": self.share, "max_share": self.max_share, "refused": self.refused,
                "real": {"notes": self.real_notes, "excluded": len(self.real_excluded),
                         **self.counts(self.real_excluded), "keys": self.real_keys},
                "synthetic": {"notes": self.synthetic_notes, "excluded": len(self.synthetic_excluded),
                              **self.counts(self.synthetic_excluded), "keys": self.synthetic_keys}}


class OverlapRefused(ValidationError):
    """Too many evaluation notes have a copy among the real training notes: the run would measure memory."""

    def __init__(self, report: OverlapReport) -> None:
        self.report = report
        super().__init__(_(
            "%(overlapped)d of %(total)d evaluation notes (%(share).1f%%, more than the %(max).1f%% allowed) have a "
            "copy or a near duplicate among the real training notes: choose an evaluation set the training notes "
            "do not contain.") % {"overlapped": report.evaluation_overlapped, "total": report.evaluation_notes,
                                  "share": 100 * report.share, "max": 100 * report.max_share})


def overlap_find(training: Sequence[LabelledNote], evaluation: Sequence[LabelledNote], *,
                 thresholds: DuplicateThresholds = DuplicateThresholds()  # noqa: B008 (frozen)
                 ) -> tuple[dict[int, str], set[int]]:
    """(training index -> EXACT or NEAR, the evaluation indices they overlap) for one training source."""
    evaluation_by_hash: dict[str, list[int]] = {}
    for i, note in enumerate(evaluation):
        evaluation_by_hash.setdefault(content_hash(note.text), []).append(i)
    found: dict[int, str] = {}
    overlapped: set[int] = set()
    for j, note in enumerate(training):
        if (copied := evaluation_by_hash.get(content_hash(note.text))) is not None:
            found[j] = EXACT
            overlapped.update(copied)
    # One id space: evaluation notes first, so a group holding one has an evaluation note as its original.
    count = len(evaluation)
    texts = [(i, note.text) for i, note in enumerate(evaluation)]
    texts += [(count + j, note.text) for j, note in enumerate(training)]
    groups: dict[int, list[int]] = {}
    for member, (original, _jaccard) in near_duplicates(texts, thresholds=thresholds).items():
        groups.setdefault(original, []).append(member)
    for original, members in groups.items():
        trained = [member - count for member in members if member >= count]
        if original >= count or not trained:
            continue  # no evaluation note in the group, or no training note
        overlapped.add(original)
        overlapped.update(member for member in members if member < count)
        for j in trained:
            found.setdefault(j, NEAR)
    return found, overlapped


def overlap_check(*, real: Sequence[LabelledNote], synthetic: Sequence[LabelledNote],
                  evaluation: Sequence[LabelledNote],
                  thresholds: OverlapThresholds = OverlapThresholds()  # noqa: B008 (frozen)
                  ) -> OverlapReport:
    """Find the training notes to leave out; OverlapRefused when the real ones overlap more than max_share of the
    evaluation notes. Real and synthetic notes are checked separately, so a synthetic copy of a real training note
    does not chain that real note to an evaluation note."""
    real_excluded, overlapped = overlap_find(real, evaluation, thresholds=thresholds.duplicates)
    synthetic_excluded, _ignored = overlap_find(synthetic, evaluation, thresholds=thresholds.duplicates)
    if any(j not in synthetic_excluded for j in range(len(synthetic))):
        index = MemorisationIndex(enumerate(note.text for note in evaluation), thresholds=thresholds.memorisation)
        for j, note in enumerate(synthetic):
            if j not in synthetic_excluded and index.check(note.text).flagged(thresholds.memorisation):
                synthetic_excluded[j] = MEMORISED
    report = OverlapReport(
        evaluation_notes=len(evaluation), real_notes=len(real), synthetic_notes=len(synthetic),
        evaluation_overlapped=len(overlapped), max_share=thresholds.max_share,
        real_excluded=real_excluded, synthetic_excluded=synthetic_excluded,
        real_keys=[real[j].key for j in sorted(real_excluded)[:KEYS_REPORTED]],
        synthetic_keys=[synthetic[j].key for j in sorted(synthetic_excluded)[:KEYS_REPORTED]])
    if report.refused:
        raise OverlapRefused(report)
    return report
