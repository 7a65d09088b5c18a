"""Small labelled note sets for the utility evaluation: five codes of Russian complaints built from each code's
own phrases (complaint_texts: no two notes share more than a phrase in a row). G43 has a single,
uninformative real training note: only synthetic notes can teach it. stored_splits, approved_synthetic and release put
them in the database (splits train and dev, approved releasable notes, release medsyn-ru v1)."""

from __future__ import annotations

import json
import random
from itertools import permutations

import pytest

from review.releases.services import do_create_release
from review.utility.datasets import LabelledNote, NoteSet
from tests.generation.factories import NoteFactory
from tests.review.conftest import synthetic_make
from tests.review.releases.factories import approve

PHRASES = {
    "J06": ["кашель с мокротой", "насморк", "боль в горле", "заложенность носа", "температура до 38",
            "першение в горле", "чихание", "ломота в теле", "слабость третий день", "осиплость голоса",
            "слезотечение", "озноб по вечерам"],
    "M54": ["боль в пояснице", "иррадиация в левую ногу", "онемение стопы", "боль при наклонах",
            "скованность по утрам", "прострелы в спине", "боль в шее при поворотах", "ограничение движений",
            "жжение вдоль позвоночника", "тянущая боль в крестце", "слабость в ноге", "боль после подъёма тяжести"],
    "I10": ["давление до 160/100", "головная боль в затылке", "шум в ушах", "мелькание мушек перед глазами",
            "головокружение", "сердцебиение", "тяжесть в голове по утрам", "носовые кровотечения",
            "приливы жара к лицу", "отёки век", "давящая боль в висках", "плохой сон"],
    "K21": ["изжога после еды", "отрыжка кислым", "горечь во рту", "жжение за грудиной после еды",
            "тяжесть в эпигастрии", "изжога лёжа", "ком в горле", "тошнота по утрам", "вздутие живота",
            "кислый привкус во рту", "кашель по ночам после ужина", "жжение в пищеводе"],
    "G43": ["пульсирующая боль в половине головы", "светобоязнь", "рвота на высоте приступа", "зрительная аура",
            "звукобоязнь", "приступы дважды в месяц", "рвота приносит облегчение", "мерцающие зигзаги перед глазами",
            "боль усиливается при ходьбе", "приступ длится до суток", "мигрень у матери",
            "онемение руки перед приступом"],
}
CODES = sorted(PHRASES)
G43_REAL = "Жалобы на общее недомогание, плохое самочувствие."


def complaint_texts(code: str, count: int, *, seed: int) -> list[str]:
    """count notes of a code, each three of its phrases in an order; no two notes share an adjacent pair of phrases,
    so no note shares a run of words longer than a phrase with another (none memorises or nearly copies another:
    a shared opening such as "Жалобы на" would make half the 5-grams of two short notes alike)."""
    choices = list(permutations(range(len(PHRASES[code])), 3))
    random.Random(f"{code}-{seed}").shuffle(choices)
    texts, pairs = [], set()
    for first, second, third in choices:
        if {(first, second), (second, third)} & pairs:
            continue
        pairs |= {(first, second), (second, third)}
        text = ", ".join(PHRASES[code][i] for i in (first, second, third))
        texts.append(text[0].upper() + text[1:] + ".")
        if len(texts) == count:
            return texts
    raise AssertionError(f"not {count} notes of {code}")


def note_set(name: str, notes: list[tuple[str, str]], prefix: str) -> NoteSet:
    return NoteSet(name=name, notes=tuple(LabelledNote(key=f"{prefix}:{i}", text=text, code=code)
                                          for i, (text, code) in enumerate(notes)),
                   source={"kind": "test"})


@pytest.fixture(scope="session")
def notes_by_role() -> dict[str, list[tuple[str, str]]]:
    """(text, code) lists: real training (8 a code, G43 one vague note), evaluation (4 a code), synthetic (10 of
    G43, 3 of every other code), all distinct."""
    real, evaluation, synthetic = [], [], []
    for code in CODES:
        texts = complaint_texts(code, 25, seed=1)
        real += [(text, code) for text in texts[:8]] if code != "G43" else [(G43_REAL, code)]
        evaluation += [(text, code) for text in texts[8:12]]
        synthetic += [(text, code) for text in texts[12:22 if code == "G43" else 15]]
    return {"real": real, "evaluation": evaluation, "synthetic": synthetic}


@pytest.fixture
def real_set(notes_by_role) -> NoteSet:
    return note_set("real", notes_by_role["real"], "real")


@pytest.fixture
def evaluation_set(notes_by_role) -> NoteSet:
    return note_set("evaluation", notes_by_role["evaluation"], "evaluation")


@pytest.fixture
def synthetic_set(notes_by_role) -> NoteSet:
    return note_set("synthetic", notes_by_role["synthetic"], "synthetic")


@pytest.fixture
def curator(make_user):
    return make_user("curator")


def rumedtop3_lines(notes: list[tuple[str, str]], prefix: str = "d") -> str:
    """notes as a RuMedTop3 jsonl file's text (idx, symptoms, code)."""
    return "".join(json.dumps({"idx": f"{prefix}{i}", "symptoms": text, "code": code}, ensure_ascii=False) + "\n"
                   for i, (text, code) in enumerate(notes))


@pytest.fixture
def stored_splits(db, notes_by_role) -> dict[str, list]:
    """The fixture's real training notes stored as split train and its evaluation notes as split dev."""
    return {"train": [NoteFactory(text=text, icd_code=code, split="train") for text, code in notes_by_role["real"]],
            "dev": [NoteFactory(text=text, icd_code=code, split="dev") for text, code in notes_by_role["evaluation"]]}


@pytest.fixture
def approved_synthetic(db, notes_by_role, curator) -> list:
    """The fixture's synthetic notes, approved and checked by both scans (releasable)."""
    notes = [synthetic_make(text, code) for text, code in notes_by_role["synthetic"]]
    approve(curator, *notes)
    return notes


@pytest.fixture
def release(approved_synthetic, curator):
    """A release of the approved synthetic notes (medsyn-ru v1)."""
    return do_create_release(actor=curator, name="medsyn-ru", filters={})
