from __future__ import annotations

import pytest

from generation.models import Note
from tests.generation.factories import NoteFactory

REAL_TEXTS = [
    "Жалобы на кашель с мокротой, насморк, температуру до 38, слабость в течение трёх дней.",
    "Боли в пояснице при наклонах, иррадиация в левую ногу, онемение стопы, усиливаются к вечеру.",
    "Головная боль в затылке, головокружение, шум в ушах, давление поднимается до 160/100.",
]


@pytest.fixture
def note_pool(db):
    """Real and synthetic notes over three categories, two models, with matching lengths."""
    notes = []
    for category in ("J06", "M54", "I10"):
        for i in range(6):
            base = REAL_TEXTS[i % 3]
            notes.append(NoteFactory(icd_code=category, text=f"{base} Визит {category}-{i}."))
            notes.append(NoteFactory(synthetic=True, icd_code=category, text=f"«{base}» Синтетика {category}-{i}.</s>",
                                     metadata={"generation_model": "gpt-4" if i % 2 else "smollm2",
                                               "prompt_variant": "symptoms", "job_id": 1 + i % 2}))
    return notes


CURATION_REAL = [
    "Жалобы на сухой кашель, повышение температуры до 38,5, ломоту в теле и заложенность носа в течение двух дней.",
    "Беспокоят давящие боли за грудиной при ходьбе, одышка при подъёме на второй этаж, отёки голеней к вечеру.",
    "Жалобы на изжогу после еды, отрыжку кислым, тяжесть в эпигастрии, усиливающиеся в положении лёжа.",
]
CURATION_SYNTHETIC = [
    "Пациентка 45 лет жалуется на \"сухой\" кашель, насморк и слабость;\nтемпература 37,8 держится три дня.",
    "Мужчина 60 лет, «давящие» боли в груди при нагрузке, одышка, проходит в покое через 5 минут.",
    "Жалобы на изжогу и горечь во рту по утрам, вздутие живота, стул неустойчивый, аппетит снижен.",
    "Пациент 30 лет отмечает головную боль в висках, светобоязнь, тошноту; приступы дважды в неделю.",
    "Женщина 52 лет: боли в пояснице после подъёма тяжести, иррадиация в правую ногу, онемение пальцев.",
    "Ребёнок 7 лет, насморк, чихание, зуд в носу весной, слезотечение, кашель по ночам без температуры.",
]


def synthetic_make(text: str, code: str, *, model: str = "gpt-4", variant: str = "symptoms_example", job: int = 1,
                   example: Note | None = None, passed: bool = True, recall: float = 0.8, **fields) -> Note:
    """A synthetic note with the provenance a generation job writes (generation.jobs.note_provenance)."""
    example_text = example.text if example else ""
    metadata = {
        "job_id": job, "generation_model": model, "prompt_variant": variant, "symptoms": ["кашель", "слабость"],
        "example_note_id": example.pk if example else None, "example_text": example_text,
        "prompt": {"system": "Ты врач.", "user": f"Вот анамнез: {example_text}\nНапиши похожий."},
        "graph_version": "g-1", "prompt_template": {"id": 1, "name": f"default-{variant}-ru", "version": 2},
        "model_config": {"id": 1, "name": model, "backend": "openai"},
        "checks": {"passed": passed, "scores": {"symptom_recall": recall, "example_precision": 0.4}, "reasons": []},
    }
    return NoteFactory(synthetic=True, text=text, icd_code=code, metadata=metadata, **fields)


@pytest.fixture
def curation_pool(db):
    """Three real notes (open RuMedTop3 and one private) and six synthetic notes over three codes, all generated."""
    real = [NoteFactory(text=text, icd_code=code, source_dataset=source)
            for text, code, source in zip(CURATION_REAL, ("J06.9", "I20.8", "K21.9"),
                                          ("RuMedTop3", "RuMedTop3", "ClinicPrivate"), strict=True)]
    codes = ("J06.9", "I20.8", "K21.9", "G43.0", "M54.5", "J30.1")
    synthetic = [synthetic_make(text, code, model="gpt-4" if i % 2 else "smollm2", job=1 + i % 2,
                                example=real[i] if i < 3 else None, recall=0.5 + i / 10)
                 for i, (text, code) in enumerate(zip(CURATION_SYNTHETIC, codes, strict=True))]
    return {"real": real, "synthetic": synthetic}
