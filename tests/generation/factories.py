"""Test data for generation: note import jobs as the upload page leaves them (queued, with their file)."""

from __future__ import annotations

import json

import factory

from generation.models import NoteImportJob


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
