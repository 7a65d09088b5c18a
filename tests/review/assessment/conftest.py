"""Fixtures of the assessment tests: a pool whose real and synthetic notes say the same but differ in form."""

from __future__ import annotations

import pytest

from review.curation.models import NoteCuration
from tests.generation.factories import NoteFactory

SYMPTOMS = ["кашель", "насморк", "слабость", "головная боль", "боль в горле", "одышка", "ломота в теле", "озноб",
            "чихание", "осиплость голоса", "заложенность носа", "потливость", "тошнота", "боль в мышцах", "сыпь"]


def same_note_twice(n: int) -> tuple[str, str]:
    """One note as the real corpus writes it (de-identified date, flat line) and as a generator might (a chat role,
    guillemets, Markdown, a concrete date, a special token): the same content, a different form."""
    first, second = SYMPTOMS[n % len(SYMPTOMS)], SYMPTOMS[(n + 5) % len(SYMPTOMS)]
    real = (f"Повторный прием от *ДАТА*: жалобы на {first} и {second} в течение {n + 2} дней, "
            f"температура до 37,{n % 10}. Лечение получает, переносит хорошо")
    synthetic = (f"assistant\n«**Повторный прием от 1{n % 9}.03.2024:** жалобы на {first} и {second} в течение "
                 f"{n + 2} дней,\nтемпература до 37,{n % 10}.\n- Лечение получает, переносит хорошо,»</s>")
    return real, synthetic


@pytest.fixture
def form_pool(db):
    """Fifteen real and fifteen synthetic notes of one category: enough for the origin classifier to be measured."""
    notes = []
    for n in range(15):
        real, synthetic = same_note_twice(n)
        notes.append(NoteFactory(text=real, icd_code="J06.9"))
        notes.append(NoteFactory(synthetic=True, text=synthetic, icd_code="J06.9",
                                 metadata={"generation_model": "gpt-4", "prompt_variant": "symptoms", "job_id": 1,
                                           "checks": {"passed": True, "scores": {}, "reasons": []}}))
    return notes


@pytest.fixture
def checked_notes(db):
    """Four real and four synthetic notes: one failed its automatic checks, one is flagged as memorised by a scan,
    one is flagged but overridden by a curator, one is clean."""
    for n in range(4):
        NoteFactory(text=f"Боли в пояснице {n} дней, иррадиация в ногу.", icd_code="M54")
    notes = {}
    for name, passed in (("failed", False), ("memorised", True), ("overridden", True), ("clean", True)):
        notes[name] = NoteFactory(synthetic=True, text=f"Боль в пояснице ({name}), отдаёт в ногу.", icd_code="M54",
                                  metadata={"generation_model": "m", "job_id": 1,
                                            "checks": {"passed": passed, "scores": {}, "reasons": []}})
    NoteCuration.objects.create(note=notes["memorised"], memorised=True)
    NoteCuration.objects.create(note=notes["overridden"], memorised=True, flag_override=True)
    return notes
