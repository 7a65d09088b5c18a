"""Memorisation of real notes (one definition for the generation checks and the curation scan); no database."""

from __future__ import annotations

import pytest

from generation.memorisation import MemorisationIndex, MemorisationResult, MemorisationThresholds
from medsyn_site.core.text import words
from tests.generation.complaint_notes import BACK, KNEES, NOTES, STOMACH, replace

REAL = dict(zip(range(101, 107), NOTES, strict=True))


@pytest.fixture(scope="module")
def index() -> MemorisationIndex:
    return MemorisationIndex(REAL.items())


def test_embedded_real_note_is_flagged_with_its_length(index):
    synthetic = ("Пациентка 45 лет обратилась к терапевту на плановый приём. " + BACK
                 + " Рекомендованы МРТ пояснично-крестцового отдела и консультация невролога.")
    result = index.check(synthetic)
    assert result.real_note_id == 102
    assert result.longest_ngram == len(words(BACK))
    assert 0.5 < result.near_copy < 1.0  # the added sentences are not in the real note
    assert result.flagged(MemorisationThresholds())


def test_riskiest_real_note_wins(index):
    # Six words of the cough note, the whole knee note: the knee note is the copy.
    synthetic = "Заболела остро три дня назад после переохлаждения. " + KNEES
    result = index.check(synthetic)
    assert (result.real_note_id, result.longest_ngram) == (106, len(words(KNEES)))


def test_lightly_edited_copy_is_flagged_by_near_copy(index):
    # A word changed every 11 words: no shared run reaches 12 words, most 5-grams survive.
    edited = STOMACH
    for old, new in [("через два", "через полтора"), ("Симптомы беспокоят", "Симптомы отмечаются"),
                     ("снижение аппетита", "ухудшение аппетита"), ("Самостоятельно", "Периодически")]:
        edited = replace(edited, old, new)
    result = index.check(edited)
    assert result.real_note_id == 104
    assert result.longest_ngram < MemorisationThresholds().longest_ngram_words
    assert result.near_copy >= 0.5
    assert result.flagged(MemorisationThresholds())
    assert not result.flagged(MemorisationThresholds(near_copy=0.9))


def test_shared_stock_phrases_are_not_memorisation(index):
    synthetic = ("Жалобы на периодическое покалывание в пальцах рук, в течение дня усиливается при письме и работе "
                 "за компьютером. Боли в шее не отмечает, зрение не изменилось, аппетит сохранён, стул в норме. "
                 "Симптомы беспокоят в течение двух месяцев, ранее к врачам не обращалась.")
    shared_pairs = {tuple(words(synthetic)[i:i + 2]) for i in range(len(words(synthetic)) - 1)}
    assert {("жалобы", "на"), ("в", "течение"), ("боли", "в")} <= shared_pairs
    result = index.check(synthetic)
    assert result == MemorisationResult(real_note_id=None, longest_ngram=0, near_copy=0.0)
    assert not result.flagged(MemorisationThresholds())


def test_boilerplate_anchors_are_dropped():
    template = "Объективно: состояние удовлетворительное, кожные покровы обычной окраски."
    real = [(i, f"{template} {note}") for i, note in enumerate(NOTES[:3])]
    synthetic = f"{template} Жалоб активно не предъявляет, пришла за справкой в бассейн."
    assert MemorisationIndex(real).check(synthetic).real_note_id == 0
    index = MemorisationIndex(real, thresholds=MemorisationThresholds(anchor_max_notes=2))
    assert index.boilerplate_anchors == len(words(template)) - 4
    assert index.check(synthetic).real_note_id is None
    assert index.check(f"{synthetic} {NOTES[1]}").real_note_id == 1  # the notes' own anchors stay


def test_empty_and_short_texts_in_memorisation():
    index = MemorisationIndex([(1, ""), (2, "Кашель, насморк."), (3, BACK)])
    assert len(index) == 2
    nothing = MemorisationResult(real_note_id=None, longest_ngram=0, near_copy=0.0)
    assert index.check("") == nothing
    assert index.check("38,5 !") == nothing
    assert index.check("насморк, кашель") == nothing  # short notes match on equal word sequences only
    assert index.check("Кашель; насморк") == MemorisationResult(real_note_id=2, longest_ngram=2, near_copy=1.0)
    assert index.check("боли в поясничном отделе") == nothing  # part of a real note is not a copy of one
    assert MemorisationIndex([]).check(BACK) == nothing
