from __future__ import annotations

import pytest

from generation.models import Note
from generation.services import note_content_hash

REAL_TEXTS = [
    "Жалобы на кашель с мокротой, насморк, температуру до 38, слабость в течение трёх дней.",
    "Боли в пояснице при наклонах, иррадиация в левую ногу, онемение стопы, усиливаются к вечеру.",
    "Головная боль в затылке, головокружение, шум в ушах, давление поднимается до 160/100.",
]


def note_make(origin: str, category: str, text: str, **metadata) -> Note:
    return Note.objects.create(origin=origin, text=text, icd_code=category, icd_category=category,
                               source_dataset="test", metadata=metadata,
                               content_hash=note_content_hash(origin=origin, icd_code=category, text=text))


@pytest.fixture
def note_pool(db):
    """Real and synthetic notes over three categories, two models, with matching lengths."""
    notes = []
    for category in ("J06", "M54", "I10"):
        for i in range(6):
            base = REAL_TEXTS[i % 3]
            notes.append(note_make("real", category, f"{base} Визит {category}-{i}."))
            notes.append(note_make("synthetic", category, f"«{base}» Синтетика {category}-{i}.</s>",
                                   generation_model="gpt-4" if i % 2 else "smollm2", prompt_variant="symptoms",
                                   job_id=1 + i % 2))
    return notes
