"""What a utility evaluation reads: labelled notes, each set with a hash naming exactly what was read.

Real training notes come by split from the database; an evaluation set from a RuMedTop3 file (through
core.rumedbench, the one reader) or by split; synthetic notes from a release's snapshot or from the approved notes a
release would take now. Labels are ICD-10 categories: RuMedTop3 is a category task, and a synthetic note written
for J06.9 teaches the classifier J06.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from generation.models import Note
from medsyn_site.core.errors import InputError
from medsyn_site.core.icd10 import icd_category
from medsyn_site.core.rumedbench import RuMedTop3Record, rumedtop3_read
from medsyn_site.core.text import text_normalise
from review.curation.selectors import notes_releasable
from review.releases.models import Release
from review.releases.services import release_synthetic_candidates

from .models import EvaluationSet

LABEL_LEVEL = "ICD-10 category"


@dataclass(frozen=True)
class LabelledNote:
    """One note as the evaluation sees it. key says where it came from ("note:12", "release:3#40",
    "dev_v1.jsonl:17"), so an excluded note can be named in a report."""

    key: str
    text: str
    code: str  # the label: an ICD-10 category


@dataclass(frozen=True)
class NoteSet:
    """Labelled notes in a fixed order (the bootstrap resamples by position) with their provenance."""

    name: str
    notes: tuple[LabelledNote, ...]
    source: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.notes)

    @property
    def sha256(self) -> str:
        return notes_sha256(self.notes)

    def describe(self) -> dict:
        """The provenance, the size and the content hash: enough to find the same notes again."""
        return {"name": self.name, **self.source, "notes": len(self.notes), "sha256": self.sha256}


def notes_sha256(notes: tuple[LabelledNote, ...] | list[LabelledNote]) -> str:
    """sha256 over (label, normalised text) of every note, in order: two sets with this hash give the same run."""
    digest = hashlib.sha256()
    for note in notes:
        digest.update(json.dumps([note.code, text_normalise(note.text)], ensure_ascii=False).encode())
        digest.update(b"\n")
    return digest.hexdigest()


def _labelled(key: str, text: str, code: str) -> LabelledNote:
    return LabelledNote(key=key, text=text, code=icd_category(code))


def evaluation_set_read(path: Path, *, name: str | None = None) -> NoteSet:
    """A labelled RuMedTop3 jsonl file (idx, symptoms, code); InputError listing every bad line, as the imports
    report them. name: the file's name in keys and messages (an upload's original name)."""
    name = name or path.name
    records = evaluation_file_records(path, name=name)
    notes = tuple(_labelled(f"{name}:{record.line}", record.text, record.code) for record in records)
    return NoteSet(name=name, notes=notes,
                   source={"kind": "file", "file": name, "file_sha256": hashlib.sha256(path.read_bytes()).hexdigest()})


def evaluation_file_records(path: Path, *, name: str) -> list[RuMedTop3Record]:
    """The records of a RuMedTop3 file, or InputError named name listing every bad line."""
    try:
        return rumedtop3_read(path)
    except InputError as error:  # the reader names the file on disk: an upload's is a temporary name
        raise InputError(name, error.problems) from None


def evaluation_set_notes(evaluation_set: EvaluationSet) -> NoteSet:
    """The notes of an uploaded evaluation set as stored, in file order: the same keys, source and hash as
    evaluation_set_read gives for its file."""
    name = evaluation_set.original_name
    rows = evaluation_set.notes.order_by("position").values_list("line", "text", "code")
    notes = tuple(_labelled(f"{name}:{line}", text, code) for line, text, code in rows)
    return NoteSet(name=name, notes=notes,
                   source={"kind": "file", "file": name, "file_sha256": evaluation_set.file_sha256,
                           "evaluation_set": evaluation_set.name, "evaluation_set_id": evaluation_set.pk})


def real_notes_of_split(split: str) -> NoteSet:
    """The real notes imported with this split (train, dev, test), in id order."""
    rows = (Note.objects.filter(origin=Note.Origin.REAL, split=split).order_by("id")
            .values_list("id", "text", "icd_code"))
    notes = tuple(_labelled(f"note:{pk}", text, code) for pk, text, code in rows)
    return NoteSet(name=_("real notes, split %(split)s") % {"split": split}, notes=notes,
                   source={"kind": "split", "split": split})


def release_find(reference: str) -> Release:
    """A release by "NAME" (its latest version) or "NAME:VERSION"; ValidationError if none or not sealed yet."""
    name, _sep, version = reference.strip().partition(":")
    releases = Release.objects.filter(name=name)
    if version:
        if not (version.isascii() and version.isdigit()):
            raise ValidationError(_("A release version is a whole number: %(reference)s") % {"reference": reference})
        releases = releases.filter(version=int(version))
    release = releases.order_by("-version").first()
    if release is None:
        raise ValidationError(_("No release %(reference)s.") % {"reference": reference})
    if not release.content_sha256:
        raise ValidationError(_("Release %(release)s is still being created.") % {"release": release})
    return release


def release_synthetic_notes(release: Release) -> NoteSet:
    """The synthetic notes frozen in a release, in export order; its real notes (include_real) are left out."""
    rows = release.notes.order_by("idx").values_list("idx", "origin", "text", "icd_code")
    notes, real = [], 0
    for idx, origin, text, code in rows:
        if origin != Note.Origin.SYNTHETIC:
            real += 1
            continue
        notes.append(_labelled(f"release:{release.pk}#{idx}", text, code))
    return NoteSet(name=str(release), notes=tuple(notes),
                   source={"kind": "release", "release": release.name, "version": release.version,
                           "release_id": release.pk, "content_sha256": release.content_sha256,
                           "release_notes": release.note_count, "real_notes_left_out": real})


def approved_synthetic_notes(filters: dict) -> NoteSet:
    """The approved synthetic notes matching a curation filter that a release would take now (releasable: checked
    and not held back), in id order."""
    notes = notes_releasable(release_synthetic_candidates(filters)).order_by("id")
    found = tuple(_labelled(f"note:{pk}", text, code) for pk, text, code in notes.values_list("id", "text", "icd_code"))
    return NoteSet(name=_("approved notes"), notes=found,
                   source={"kind": "approved", "filters": {key: value for key, value in filters.items()
                                                           if value not in (None, "")}})
