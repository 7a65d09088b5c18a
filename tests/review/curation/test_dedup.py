"""Near duplicates among realistic Russian complaint notes; no database needed."""

from __future__ import annotations

import random

import pytest

from review.curation.dedup import DuplicateThresholds, near_duplicates, note_shingles, tokens
from tests.generation.complaint_notes import BACK, COUGH, NOTES, PRESSURE, STOMACH, replace


def jaccard(a: str, b: str) -> float:
    size = DuplicateThresholds().shingle_words
    first, second = note_shingles(a, size), note_shingles(b, size)
    return len(first & second) / len(first | second)


def test_notes_are_realistic_and_distinct():
    assert all(30 <= len(tokens(note)) <= 80 for note in NOTES)
    assert max(jaccard(a, b) for i, a in enumerate(NOTES) for b in NOTES[i + 1:]) < 0.05


def test_tokens_are_lower_cased_words_without_numbers_or_punctuation():
    assert tokens("Температура 38,2; АД 170/100 мм рт. ст., кашель!") == ["температура", "ад", "мм", "рт", "ст",
                                                                          "кашель"]


def test_note_shingles_are_word_ngrams_and_short_notes_one_shingle():
    assert note_shingles("Сухой кашель, насморк и слабость.", 3) == {
        "сухой кашель насморк".encode(), "кашель насморк и".encode(), "насморк и слабость".encode()}
    assert note_shingles("Сухой кашель.", 3) == {"сухой кашель".encode()}
    assert note_shingles(" 38,5 !", 3) == set()


def test_edited_note_maps_to_lowest_id_in_any_order():
    # Two words changed (numbers are not words, so 38,2 -> 38,9 changes nothing).
    edited = replace(replace(replace(COUGH, "три дня", "четыре дня"), "потливость", "озноб"), "38,2", "38,9")
    score = jaccard(COUGH, edited)
    assert 0.8 <= score < 1.0
    notes = [(40, edited), (12, BACK), (7, COUGH), (3, PRESSURE)]
    assert near_duplicates(notes) == {40: (7, pytest.approx(score))}
    # The edited copy arriving first still maps to the original, the lower id.
    assert near_duplicates([(7, edited), (40, COUGH), (12, BACK)]) == {40: (7, pytest.approx(score))}


def test_unrelated_notes_are_not_duplicates():
    assert near_duplicates(enumerate(NOTES)) == {}


def test_lower_threshold_joins_more_edited_notes():
    edited = replace(replace(replace(BACK, "левую ягодицу", "правую ягодицу"), "на даче", "на работе"),
                     "сон нарушен", "сон не нарушен")
    score = jaccard(BACK, edited)
    assert 0.6 < score < 0.8
    assert near_duplicates([(1, BACK), (2, edited)]) == {}
    assert near_duplicates([(1, BACK), (2, edited)], thresholds=DuplicateThresholds(jaccard=0.6)) == {
        2: (1, pytest.approx(score))}


def test_chain_of_edits_groups_to_lowest_id():
    first = PRESSURE
    second = replace(first, "шум в ушах", "звон в ушах")
    third = replace(second, "участились", "стали чаще")
    assert jaccard(first, second) >= 0.8 and jaccard(second, third) >= 0.8
    assert jaccard(first, third) < 0.8  # joined only through the middle note
    result = near_duplicates([(11, first), (12, second), (5, STOMACH), (10, third)])
    assert result == {11: (10, pytest.approx(jaccard(first, third))), 12: (10, pytest.approx(jaccard(second, third)))}


def test_empty_and_short_notes():
    notes = [(1, ""), (2, "  ,.;  "), (3, "Кашель."), (4, "кашель!"), (5, "Кашель, насморк"), (6, "")]
    assert near_duplicates(notes) == {4: (3, 1.0)}
    assert near_duplicates([]) == {}


def random_notes(count: int) -> list[tuple[int, str]]:
    words = tokens(" ".join(NOTES))
    rng = random.Random(3)
    return [(i, " ".join(rng.choices(words, k=12))) for i in range(count)]


def test_progress_reports_every_thousand_and_the_end():
    calls: list[tuple[int, int]] = []
    near_duplicates(random_notes(2100), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1000, 2100), (2000, 2100), (2100, 2100)]


def test_progress_with_an_unsized_iterable_ends_with_the_count():
    calls: list[tuple[int, int]] = []
    near_duplicates(iter(random_notes(1500)), progress=lambda done, total: calls.append((done, total)))
    assert calls == [(1000, 1000), (1500, 1500)]
    calls.clear()
    near_duplicates(iter(random_notes(1500)), progress=lambda done, total: calls.append((done, total)), total=1500)
    assert calls == [(1000, 1500), (1500, 1500)]
