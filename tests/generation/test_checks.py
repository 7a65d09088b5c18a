"""Automatic checks on Russian notes."""

from __future__ import annotations

import json
from functools import partial

from generation.checks import (
    CheckThresholds,
    english_words,
    example_precision,
    ngram_jaccard,
    note_check,
    note_checks_run,
    script_share,
    symptom_recall,
)
from generation.memorisation import MemorisationIndex

SYMPTOMS = ["кашель с мокротой", "повышение температуры", "боль в груди"]
EXAMPLE = ("Пациентка жалуется на насморк, першение в горле и головную боль в течение трёх дней. "
           "Лечилась самостоятельно, без эффекта.")
GOOD_NOTE = ("Пациент 45 лет обратился с жалобами на кашель с обильной мокротой, повышение температуры тела "
             "до 38,5 градусов и боли в грудной клетке при глубоком вдохе. Болеет четыре дня, "
             "принимал жаропонижающие без эффекта.")


def test_symptom_recall_matches_inflected_forms():
    recall, found = symptom_recall("Беспокоят кашли с мокротами, температура не повышалась.", SYMPTOMS)
    assert found == ["кашель с мокротой", "повышение температуры"]  # half of a symptom's lemmas is enough
    assert recall == 2 / 3
    strict = symptom_recall("Беспокоят кашли, температура.", SYMPTOMS, lemma_share_min=1.0)
    assert strict == (0.0, [])
    assert symptom_recall(GOOD_NOTE, SYMPTOMS)[0] == 1.0


def test_a_good_note_passes_with_scores():
    report = note_check(GOOD_NOTE, symptoms=SYMPTOMS, example=EXAMPLE)
    assert report.passed, report.reasons
    assert report.scores["symptom_recall"] == 1.0
    assert report.scores["script_share"] > 0.95
    assert 0 < report.scores["example_precision"] < 0.5
    assert report.as_dict()["passed"] is True


def test_missing_symptoms_fail_with_the_missing_ones_named():
    note = "Пациент жалуется на кашель с мокротой в течение недели, усиливающийся по утрам, слабость и потливость."
    report = note_check(note, symptoms=SYMPTOMS)
    assert not report.passed
    assert report.symptoms_missing == ["повышение температуры", "боль в груди"]
    assert "повышение температуры; боль в груди" in report.reasons[0]


def test_a_near_copy_of_the_example_fails():
    copy = EXAMPLE.replace("трёх", "четырёх")
    report = note_check(copy, example=EXAMPLE)
    assert any(reason.startswith("near copy of the example") for reason in report.reasons)
    assert ngram_jaccard(copy, EXAMPLE) > 0.8
    assert example_precision(copy, EXAMPLE) > 0.9  # every lemma but "четыре"


def test_language_length_and_artifacts():
    english = note_check("The patient complains of cough and fever for three days, no chest pain at all.")
    assert any(reason.startswith("wrong language") for reason in english.reasons)
    assert script_share("Кашель, cough", "ru") == 6 / 11

    short = note_check("Кашель.")
    assert short.reasons == ["too short: 1 words (minimum 10)"]

    chatty = note_check("Вот анамнез пациента: как языковая модель, я описываю кашель, слабость и headache "
                        "with fever and температуру уже три дня подряд.")
    assert "artifact: preamble 'Вот'" in chatty.reasons
    assert "artifact: AI self-reference" in chatty.reasons
    assert "artifact: leftover English words: headache, with, fever, and" in chatty.reasons
    assert english_words("Назначен ОАК, COVID отрицательный, SpO2 97%, aspirin", frozenset({"SpO"})) == ["aspirin"]


def test_prompt_echo_ignores_the_inputs_but_catches_the_instructions():
    prompt = (f"Представь, что ты врач. Вот анамнез пациента: {EXAMPLE}\nНапиши похожий анамнез примерно такой "
              f"же длины для другого пациента с тем же заболеванием: {'; '.join(SYMPTOMS)}.")
    assert note_check(GOOD_NOTE, symptoms=SYMPTOMS, example=EXAMPLE, prompt=prompt).passed
    echoing = "Напиши похожий анамнез примерно такой же длины для другого пациента. " + GOOD_NOTE
    report = note_check(echoing, symptoms=SYMPTOMS, example=EXAMPLE, prompt=prompt)
    assert any(reason.startswith("prompt echo") for reason in report.reasons)


def test_thresholds_are_configurable():
    note = "Пациент жалуется на кашель с мокротой в течение недели, усиливающийся по утрам, слабость и потливость."
    assert note_check(note, symptoms=SYMPTOMS, thresholds=CheckThresholds(symptom_recall_min=0.3)).passed
    assert not note_check(GOOD_NOTE, thresholds=CheckThresholds(words_max=10)).passed


def test_a_memorised_real_note_is_flagged_by_the_memorisation_definition():
    copied = "Жалобы на сухой кашель по ночам, заложенность носа, першение в горле, температура 37.5 три дня."
    index = MemorisationIndex([(7, "Головная боль в затылке, головокружение, шум в ушах."), (42, copied)])
    report = note_check(copied.replace("три", "четыре"), real_notes=index)
    assert report.scores["closest_real_note"] == 42
    assert (report.scores["memorisation_longest_run"], report.scores["memorisation_near_copy"]) == (12, 0.8)
    assert "memorised real note 42 (longest shared run 12 words, 80% of the note's word 5-grams in it)" in (
        report.reasons) and not report.passed
    fresh = note_check("Пациентка отмечает боли в пояснице после подъёма тяжести, онемение левой стопы, "
                       "усиление боли при наклонах.", real_notes=index)
    assert (fresh.scores["closest_real_note"], fresh.scores["memorisation_longest_run"]) == (None, 0)
    assert not any("real note" in reason for reason in fresh.reasons)


def test_thresholds_round_trip_through_a_notes_provenance():
    thresholds = CheckThresholds(symptom_recall_min=0.9, allowed_latin_words=frozenset({"mg"}))
    stored = json.loads(json.dumps(thresholds.as_dict()))
    assert CheckThresholds.from_dict(stored) == thresholds
    assert CheckThresholds.from_dict({"words_min": 3, "retired_threshold": 1}) == CheckThresholds(words_min=3)


PROMPT = {"system": "Используй только перечисленные симптомы.",
          "user": f"Представь, что ты врач. Вот анамнез пациента: {EXAMPLE}\nНапиши похожий анамнез примерно такой "
                  f"же длины для другого пациента с тем же заболеванием: {'; '.join(SYMPTOMS)}."}


def _provenance(**fields) -> dict:
    return {"prompt_inputs": ["symptoms", "example"], "symptoms": SYMPTOMS, "example_text": EXAMPLE,
            "prompt": PROMPT, "check_thresholds": CheckThresholds().as_dict(), **fields}


def test_note_checks_run_checks_only_what_the_prompt_contained():
    run = partial(note_checks_run, language="ru", real_notes=None, scorer=None)
    full = run(text=GOOD_NOTE, provenance=_provenance())
    assert full["passed"] and {"symptom_recall", "example_precision", "prompt_echo_chars"} <= set(full["scores"])
    # An example left in the provenance of a prompt that never contained it is not checked against.
    symptoms_only = run(text=EXAMPLE.replace("трёх", "четырёх"), provenance=_provenance(prompt_inputs=["symptoms"]))
    assert "example_precision" not in symptoms_only["scores"]
    assert not any("example" in reason for reason in symptoms_only["reasons"])
    assert "symptom_recall" not in run(text=GOOD_NOTE, provenance=_provenance(prompt_inputs=["code"]))["scores"]
    imported = run(text=GOOD_NOTE, provenance={"prompt": "a MedSyn CSV prompt", "symptoms": "кашель"})
    assert imported["passed"] and not {"symptom_recall", "example_precision", "prompt_echo_chars"} & set(
        imported["scores"])


def test_note_checks_run_uses_the_stored_thresholds_and_the_prompt():
    run = partial(note_checks_run, language="ru", real_notes=None, scorer=None)
    strict = _provenance(check_thresholds=CheckThresholds(words_max=20).as_dict())
    assert run(text=GOOD_NOTE, provenance=strict)["reasons"] == ["too long: 30 words (maximum 20)"]
    echoing = "Напиши похожий анамнез примерно такой же длины для другого пациента. " + GOOD_NOTE
    assert any(reason.startswith("prompt echo") for reason in run(text=echoing, provenance=_provenance())["reasons"])
