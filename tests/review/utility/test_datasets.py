"""What an evaluation reads: a RuMedTop3 file, real notes by split, a release's synthetic notes, approved notes."""

from __future__ import annotations

import json

import pytest
from django.core.exceptions import ValidationError

from medsyn_site.core.errors import InputError
from review.releases.services import do_create_release
from review.utility.datasets import (
    approved_synthetic_notes,
    evaluation_set_read,
    real_notes_of_split,
    release_find,
    release_synthetic_notes,
)
from tests.generation.factories import NoteFactory
from tests.review.releases.factories import approve


def jsonl(path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def test_evaluation_file_is_read_by_category_with_its_hashes(tmp_path):
    path = tmp_path / "dev.jsonl"
    jsonl(path, [{"idx": "a1", "symptoms": "Кашель, насморк  три дня.", "code": "j06.9"},
                 {"idx": "a2", "symptoms": "Боль в пояснице.", "code": "M54"}])
    evaluation = evaluation_set_read(path)
    assert [(note.key, note.code) for note in evaluation.notes] == [("dev.jsonl:1", "J06"), ("dev.jsonl:2", "M54")]
    described = evaluation.describe()
    assert described["kind"] == "file" and described["notes"] == 2 and len(described["file_sha256"]) == 64
    # the content hash reads normalised text: whitespace runs do not change it, a label does
    jsonl(path, [{"idx": "b1", "symptoms": "Кашель, насморк три дня.", "code": "J06"},
                 {"idx": "b2", "symptoms": "Боль в пояснице.", "code": "M54"}])
    assert evaluation_set_read(path).sha256 == evaluation.sha256
    jsonl(path, [{"idx": "b1", "symptoms": "Кашель, насморк три дня.", "code": "J06"},
                 {"idx": "b2", "symptoms": "Боль в пояснице.", "code": "M51"}])
    assert evaluation_set_read(path).sha256 != evaluation.sha256
    jsonl(path, [{"idx": "c1", "symptoms": "Кашель.", "code": "кашель"}])
    with pytest.raises(InputError, match="not an ICD-10 code"):
        evaluation_set_read(path)


def test_real_notes_are_read_by_split_in_id_order(db):
    first = NoteFactory(text="Кашель три дня.", icd_code="J06.9", split="train")
    NoteFactory(text="Боль в пояснице.", icd_code="M54", split="dev")
    NoteFactory(synthetic=True, text="Синтетический кашель.", icd_code="J06", split="train")
    second = NoteFactory(text="Изжога после еды.", icd_code="K21", split="train")
    train = real_notes_of_split("train")
    assert [(note.key, note.code) for note in train.notes] == [(f"note:{first.pk}", "J06"),
                                                                (f"note:{second.pk}", "K21")]
    assert train.describe()["split"] == "train"


def test_a_release_gives_its_synthetic_notes_and_its_hash(curation_pool, curator):
    synthetic = curation_pool["synthetic"]
    approve(curator, *synthetic[:4])
    first = do_create_release(actor=curator, name="medsyn-ru", filters={}, include_real=True,
                              real_data_licence="Apache-2.0")
    approve(curator, synthetic[4])
    latest = do_create_release(actor=curator, name="medsyn-ru", filters={})
    assert release_find("medsyn-ru") == latest and release_find("medsyn-ru:1") == first
    notes = release_synthetic_notes(first)
    assert {note.text for note in notes.notes} == {note.text for note in synthetic[:4]}
    assert [note.code for note in notes.notes] == sorted(note.icd_category for note in synthetic[:4])
    assert notes.source == {"kind": "release", "release": "medsyn-ru", "version": 1, "release_id": first.pk,
                            "content_sha256": first.content_sha256, "release_notes": 7, "real_notes_left_out": 3}
    for reference in ("medsyn-ru:3", "other", "medsyn-ru:x"):
        with pytest.raises(ValidationError):
            release_find(reference)


def test_approved_notes_are_those_a_release_would_take(curation_pool, curator):
    synthetic = curation_pool["synthetic"]
    approve(curator, *synthetic[:3])
    approve(curator, synthetic[3], checked=False)  # not scanned: a release leaves it out
    notes = approved_synthetic_notes({"code": ""})
    assert [note.key for note in notes.notes] == [f"note:{note.pk}" for note in synthetic[:3]]
    assert notes.source == {"kind": "approved", "filters": {}}
    assert [note.code for note in approved_synthetic_notes({"code": "J06"}).notes] == ["J06"]
