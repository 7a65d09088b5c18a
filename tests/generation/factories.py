"""Test data for generation: notes of the corpus, and note import jobs as the upload page leaves them."""

from __future__ import annotations

import json

import factory

from generation.models import Note, NoteImportJob
from generation.services import note_content_hash


def rumedtop3_lines(count: int, *, code: str = "J06") -> bytes:
    """A RuMedTop3 jsonl file of count distinct notes."""
    return "".join(json.dumps({"idx": f"r{n:05d}", "symptoms": f"Жалобы пациента {n}: кашель и насморк.",
                               "code": code}, ensure_ascii=False) + "\n" for n in range(count)).encode()


class NoteImportJobFactory(factory.django.DjangoModelFactory):
    """A queued upload of a RuMedTop3 file (upload__data: its content)."""

    class Meta:
        model = NoteImportJob

    kind = NoteImportJob.Kind.RUMEDTOP3
    split = "dev"
    source_dataset = "RuMedTop3"
    original_name = "dev.jsonl"
    upload = factory.django.FileField(filename="dev.jsonl", data=b"")


class NoteFactory(factory.django.DjangoModelFactory):
    """A note of the corpus (real by default): its category and content hash follow its code and text, as the
    imports and generation jobs store them."""

    class Meta:
        model = Note

    origin = Note.Origin.REAL
    text = factory.Sequence(lambda n: f"Жалобы на кашель и насморк, визит {n}.")
    icd_code = "J06"
    icd_category = factory.LazyAttribute(lambda note: note.icd_code[:3])
    source_dataset = "test"
    metadata = factory.Dict({})
    content_hash = factory.LazyAttribute(lambda note: note_content_hash(origin=note.origin, icd_code=note.icd_code,
                                                                        text=note.text))

    class Params:
        synthetic = factory.Trait(origin=Note.Origin.SYNTHETIC, source_dataset="generated")

