"""Near duplicates and memorisation on realistic Russian complaint notes; no database needed."""

from __future__ import annotations

import random

import pytest

from review.curation.dedup import (
    DuplicateThresholds,
    MemorisationIndex,
    MemorisationResult,
    MemorisationThresholds,
    near_duplicates,
    note_shingles,
    tokens,
)

COUGH = (
    "Жалобы на кашель с трудноотделяемой мокротой, заложенность носа, першение в горле, повышение температуры "
    "тела до 38,2 градусов, общую слабость и ломоту в теле. Заболела остро три дня назад после переохлаждения, "
    "принимала парацетамол с временным эффектом. Последние сутки кашель усилился, появилась одышка при подъёме "
    "на второй этаж, ночью беспокоит потливость."
)
BACK = (
    "Беспокоят боли в поясничном отделе позвоночника, иррадиирующие в левую ягодицу и по задней поверхности "
    "бедра до колена, усиливающиеся при наклонах и длительном сидении. Отмечает онемение наружного края левой "
    "стопы и чувство ползания мурашек. Боли появились неделю назад после подъёма тяжести на даче, нестероидные "
    "противовоспалительные препараты помогают частично, сон нарушен из-за болей."
)
PRESSURE = (
    "Жалобы на головные боли давящего характера в затылочной области, шум в ушах, мелькание мушек перед глазами "
    "при повышении артериального давления до 170/100 мм рт. ст. Давление повышается преимущественно по вечерам "
    "на фоне эмоциональных нагрузок. Гипотензивные препараты принимает нерегулярно, последние две недели "
    "эпизоды участились, беспокоит сердцебиение и плохой сон."
)
STOMACH = (
    "Жалобы на ноющие боли в эпигастрии натощак и через два часа после еды, изжогу, отрыжку кислым, чувство "
    "тяжести в животе. Симптомы беспокоят около месяца, усиливаются после приёма острой и жирной пищи. Отмечает "
    "снижение аппетита, похудела на три килограмма. Стул оформленный, без примесей крови. Самостоятельно "
    "принимала омепразол с кратковременным улучшением."
)
BLADDER = (
    "Жалобы на учащённое болезненное мочеиспускание малыми порциями, рези в конце мочеиспускания, тянущие боли "
    "внизу живота и в пояснице справа. Температура повышалась до 37,6 вечером. Симптомы появились два дня назад "
    "после переохлаждения. Подобные эпизоды были дважды за последний год, лечилась фурагином. Моча мутная, "
    "с неприятным запахом."
)
KNEES = (
    "Боли в коленных суставах, больше в правом, механического характера, усиливаются при спуске по лестнице и "
    "после длительной ходьбы, стихают в покое. Утренняя скованность до пятнадцати минут. Периодически отмечает "
    "припухлость правого коленного сустава и хруст при движении. Болеет около пяти лет, ухудшение в течение "
    "последнего месяца, мази с диклофенаком без эффекта."
)
NOTES = [COUGH, BACK, PRESSURE, STOMACH, BLADDER, KNEES]
REAL = dict(zip(range(101, 107), NOTES, strict=True))


def jaccard(a: str, b: str) -> float:
    size = DuplicateThresholds().shingle_words
    first, second = note_shingles(a, size), note_shingles(b, size)
    return len(first & second) / len(first | second)


def replace(text: str, old: str, new: str) -> str:
    assert old in text
    return text.replace(old, new, 1)


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


@pytest.fixture(scope="module")
def index() -> MemorisationIndex:
    return MemorisationIndex(REAL.items())


def test_embedded_real_note_is_flagged_with_its_length(index):
    synthetic = ("Пациентка 45 лет обратилась к терапевту на плановый приём. " + BACK
                 + " Рекомендованы МРТ пояснично-крестцового отдела и консультация невролога.")
    result = index.check(synthetic)
    assert result.real_note_id == 102
    assert result.longest_ngram == len(tokens(BACK))
    assert 0.5 < result.near_copy < 1.0  # the added sentences are not in the real note
    assert result.flagged(MemorisationThresholds())


def test_riskiest_real_note_wins(index):
    # Six words of the cough note, the whole knee note: the knee note is the copy.
    synthetic = "Заболела остро три дня назад после переохлаждения. " + KNEES
    result = index.check(synthetic)
    assert (result.real_note_id, result.longest_ngram) == (106, len(tokens(KNEES)))


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
    shared_pairs = {tuple(tokens(synthetic)[i:i + 2]) for i in range(len(tokens(synthetic)) - 1)}
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
    assert index.boilerplate_anchors == len(tokens(template)) - 4
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
