"""Template filling, the baseline with no model: a note made of fixed sentence templates filled with the plan item's
inputs, so a user can see whether a release written by a language model beats the trivial one.

A note is: the patient (sex and age drawn as the prompts draw them), the diagnosis when the prompt named it
(prompt(code); the disease's name only when it is written in the note's language, else the code alone), the graph
symptoms the prompt contained, shuffled and split into one to three groups (a complaints sentence, then "also"
sentences), when the illness began, and one or two closing sentences. Each sentence is one of several templates.
The example note is never read: the baseline cannot copy a real note. Every choice comes from an RNG seeded by the
request's PlanInputs.seed (the job's seed and the item's index), so the same job writes the same notes in any process.
The templates are data in the note's language, not the interface's, so they are not translated.
"""

from __future__ import annotations

import random
import time
from typing import TYPE_CHECKING

from generation.checks import script_share
from generation.prompts import age_phrase, patient_draw

from .base import GenerationRequest, GenerationResult, GenerationWatch, PlanInputs

if TYPE_CHECKING:
    from generation.models import ModelConfig

MAX_GROUPS = 3
DAYS_RANGE = (1, 14)
SCRIPT_SHARE_MIN = 0.5  # a disease name mostly in another script (an English WHO name in a Russian note) is left out

# Words that agree with the patient's sex, by language.
FORMS: dict[str, dict[str, dict[str, str]]] = {
    "ru": {
        "male": {"a": "", "sya": "ся", "person": "Мужчина", "patient": "Пациент", "sick": "Больной", "ill": "больным"},
        "female": {"a": "а", "sya": "ась", "person": "Женщина", "patient": "Пациентка", "sick": "Больная",
                   "ill": "больной"},
    },
    "en": {
        "male": {"person": "man", "patient": "Male patient", "pronoun": "He"},
        "female": {"person": "woman", "patient": "Female patient", "pronoun": "She"},
    },
}

# Sentence templates by part and language. Symptoms are graph names in the nominative: the Russian templates list them
# after a colon or a verb that agrees with their number ({bother}), so any name reads correctly.
SENTENCES: dict[str, dict[str, tuple[str, ...]]] = {
    "patient": {
        "ru": ("{person}, {age}.", "{patient} {age}.", "{sick} {age}."),
        "en": ("A {person} aged {age}.", "{patient}, {age} years old.", "Patient: a {person}, {age} years old."),
    },
    "diagnosis": {
        "ru": ("Обратил{sya} с диагнозом «{disease}» ({code}).", "Направлен{a} с диагнозом «{disease}» ({code})."),
        "en": ("Referred with {disease} ({code}).", "Presents with a diagnosis of {disease} ({code})."),
    },
    "diagnosis_code": {
        "ru": ("Обратил{sya} с диагнозом {code}.", "Направлен{a} с диагнозом {code}."),
        "en": ("Referred with a diagnosis of {code}.", "Presents with a diagnosis of {code}."),
    },
    "complaints": {
        "ru": ("Жалобы на: {symptoms}.", "Жалобы: {symptoms}.", "{Bother} {symptoms}.", "Основные жалобы: {symptoms}.",
               "Предъявляет жалобы на: {symptoms}."),
        "en": ("Complains of {symptoms}.", "Presenting complaints: {symptoms}.", "{pronoun} reports {symptoms}.",
               "Main complaints: {symptoms}."),
    },
    "more": {
        "ru": ("Также отмечает: {symptoms}.", "Кроме того, {bother} {symptoms}.", "Дополнительно: {symptoms}.",
               "Помимо этого, отмечает: {symptoms}."),
        "en": ("{pronoun} also notes {symptoms}.", "In addition: {symptoms}.", "Also reports {symptoms}."),
    },
    "no_symptoms": {
        "ru": ("Жалобы соответствуют основному заболеванию.", "Обратил{sya} для обследования и лечения."),
        "en": ("Complaints are consistent with the underlying condition.", "Came for examination and treatment."),
    },
    "onset": {
        "ru": ("Симптомы появились {days} назад.", "Заболел{a} {days} назад.", "Болеет {days}.",
               "Считает себя {ill} {days}."),
        "en": ("Symptoms began {days} ago.", "{pronoun} has been ill for {days}.", "The illness started {days} ago."),
    },
    "closing": {
        "ru": ("Ранее за медицинской помощью не обращал{sya}.", "Самостоятельно не лечил{sya}.",
               "Принимал{a} безрецептурные препараты без заметного эффекта.", "Аллергологический анамнез не отягощён.",
               "Хронические заболевания отрицает."),
        "en": ("No treatment has been taken so far.", "{pronoun} has not sought medical care before.",
               "Over-the-counter remedies gave no clear relief.", "No known drug allergies.",
               "Denies chronic illnesses."),
    },
}
AND = {"ru": "и", "en": "and"}
BOTHER = ("беспокоит", "беспокоят")  # "беспокоит кашель", "беспокоят кашель и насморк"
LANGUAGES = frozenset(FORMS)


def days_phrase(days: int, language: str) -> str:
    """'1 день', '3 дня', '11 дней' in Russian; '1 day', '3 days' in English."""
    if language != "ru":
        return f"{days} day" if days == 1 else f"{days} days"
    if days % 10 == 1 and days % 100 != 11:
        return f"{days} день"
    if 2 <= days % 10 <= 4 and not 12 <= days % 100 <= 14:
        return f"{days} дня"
    return f"{days} дней"


def symptoms_join(symptoms: list[str], language: str) -> str:
    """'a', 'a и b', 'a, b и c'."""
    if len(symptoms) < 2:
        return "".join(symptoms)
    return f"{', '.join(symptoms[:-1])} {AND[language]} {symptoms[-1]}"


def symptom_groups(symptoms: list[str], rng: random.Random) -> list[list[str]]:
    """The symptoms shuffled and cut into one to MAX_GROUPS non-empty groups (none when there is no symptom)."""
    shuffled = rng.sample(symptoms, len(symptoms))
    if len(shuffled) < 2:
        return [shuffled] if shuffled else []
    cuts = sorted(rng.sample(range(1, len(shuffled)), rng.randint(1, min(MAX_GROUPS, len(shuffled))) - 1))
    bounds = [0, *cuts, len(shuffled)]
    return [shuffled[start:end] for start, end in zip(bounds, bounds[1:], strict=False)]


def template_note(inputs: PlanInputs) -> str:
    """The note for a plan item's inputs; the same inputs (seed included) always give the same note."""
    language = inputs.language
    rng = random.Random(f"template-filling:{inputs.seed}")
    sex, age = patient_draw(rng)
    words = {**FORMS[language][sex], "age": age_phrase(age, language),
             "days": days_phrase(rng.randint(*DAYS_RANGE), language)}

    def sentence(part: str, **values: str) -> str:
        return rng.choice(SENTENCES[part][language]).format(**words, **values)

    parts = [sentence("patient")]
    if inputs.code:
        disease = inputs.disease.strip()
        named = disease.upper() not in ("", inputs.code.upper(), inputs.code[:3].upper())  # the graph's fallback: a key
        if named and script_share(disease, language) >= SCRIPT_SHARE_MIN:
            parts.append(sentence("diagnosis", disease=disease, code=inputs.code))
        else:
            parts.append(sentence("diagnosis_code", code=inputs.code))
    symptoms = [name.strip() for name in inputs.symptoms if name.strip()]
    groups = symptom_groups(list(dict.fromkeys(symptoms)), rng)
    complaints = [sentence("complaints" if n == 0 else "more", symptoms=symptoms_join(group, language),
                           bother=BOTHER[len(group) > 1], Bother=BOTHER[len(group) > 1].capitalize())
                  for n, group in enumerate(groups)] or [sentence("no_symptoms")]
    onset = sentence("onset")
    parts += [*complaints, onset] if rng.random() < 0.5 else [complaints[0], onset, *complaints[1:]]
    parts += [sentence("closing") for _ in range(rng.randint(1, 2))]
    return " ".join(dict.fromkeys(parts))  # a closing sentence drawn twice is written once


class TemplateBackend:
    """Template filling for a generation job's requests: no model, no prompt read, no tokens, no cost."""

    def __init__(self, config: ModelConfig) -> None:
        self.config = config

    def generate(self, requests: list[GenerationRequest], watch: GenerationWatch | None = None
                 ) -> list[GenerationResult]:
        results = []
        for done, request in enumerate(requests, start=1):
            results.append(self._fill(request))
            if watch is not None:
                watch.result(results[-1])
                watch.progress(done)
        return results

    def _fill(self, request: GenerationRequest) -> GenerationResult:
        started = time.perf_counter()
        inputs = request.inputs
        if inputs is None:
            error = "template filling needs a generation job's plan item (its symptoms and language), not a prompt"
        elif inputs.language not in LANGUAGES:
            error = f"template filling writes {' and '.join(sorted(LANGUAGES))} only, not {inputs.language!r}"
        else:
            return GenerationResult(key=request.key, text=template_note(inputs),
                                    latency_s=round(time.perf_counter() - started, 6))
        return GenerationResult(key=request.key, error=error, latency_s=round(time.perf_counter() - started, 6))
