"""Prompt building: seeded, the 6000-character rule, the Alpaca wrapper and chat messages."""

from __future__ import annotations

import random

import pytest

from generation.prompts import (
    DEFAULT_TEMPLATES,
    PROMPT_MAX_CHARS,
    PromptTooLongError,
    age_phrase,
    alpaca_wrap,
    prompt_build,
)

TEMPLATES = {(t["variant"], t["language"]): t for t in DEFAULT_TEMPLATES}
SYMPTOMS = ["кашель с мокротой", "температура 38", "слабость"]
EXAMPLE = "Жалобы на кашель, насморк и повышение температуры до 38 градусов в течение двух дней."


def build(variant: str, language: str = "ru", seed: int = 17, **inputs):
    template = TEMPLATES[(variant, language)]
    return prompt_build(system_text=template["system_text"], user_text=template["user_text"], variant=variant,
                        language=language, rng=random.Random(seed), **inputs)


def test_same_seed_gives_the_same_prompt_and_seeds_vary_the_patient():
    first = build("symptoms", symptoms=SYMPTOMS)
    assert build("symptoms", symptoms=SYMPTOMS) == first
    patients = {(p.sex, p.age) for p in (build("symptoms", seed=seed, symptoms=SYMPTOMS) for seed in range(20))}
    assert len(patients) > 5
    assert {sex for sex, _ in patients} == {"male", "female"}


def test_prompt_with_symptoms_and_example_follows_the_method_wording():
    prompt = build("symptoms_example", symptoms=SYMPTOMS, example=EXAMPLE)
    assert prompt.user.startswith("Представь, что ты врач. Вот анамнез пациента: " + EXAMPLE)
    assert "на все следующие: кашель с мокротой; температура 38; слабость." in prompt.user
    assert "Отвечай на русском языке." in prompt.system


def test_code_prompt_names_the_patient_and_the_disease():
    prompt = build("code", seed=3, disease_name="Острый бронхит", code="J20")
    sex_word = {"male": "мужчина", "female": "женщина"}[prompt.sex]
    assert prompt.user == f"Пациент — {sex_word} в возрасте {age_phrase(prompt.age, 'ru')} с заболеванием " \
                          "«Острый бронхит» (J20)."
    english = build("code", language="en", seed=3, disease_name="Acute bronchitis", code="J20")
    assert english.user == f"The patient is a {'man' if english.sex == 'male' else 'woman'} aged {english.age} " \
                           'with the disease "Acute bronchitis" (J20).'


@pytest.mark.parametrize(("age", "phrase"), [(21, "21 год"), (33, "33 года"), (45, "45 лет"), (11, "11 лет"),
                                             (112, "112 лет"), (84, "84 года")])
def test_russian_age_phrase(age, phrase):
    assert age_phrase(age, "ru") == phrase


def test_a_prompt_over_6000_characters_is_refused_with_a_reason():
    long_example = "Кашель. " * 800
    with pytest.raises(PromptTooLongError) as caught:
        build("symptoms_example", symptoms=SYMPTOMS, example=long_example)
    assert caught.value.length > PROMPT_MAX_CHARS
    assert caught.value.skip_reason.startswith("prompt too long:")
    assert "limit 6000" in caught.value.skip_reason
    fits = "Кашель. " * 600
    assert build("symptoms_example", symptoms=SYMPTOMS, example=fits).length <= PROMPT_MAX_CHARS


def test_alpaca_wrapper_and_chat_messages():
    prompt = build("symptoms", symptoms=SYMPTOMS)
    assert alpaca_wrap("Напиши анамнез.", "кашель") == "### Задание: Напиши анамнез.\n### Вход: кашель\n### Ответ: "
    assert prompt.alpaca_text() == f"### Задание: {prompt.system}\n### Вход: {prompt.user}\n### Ответ: "
    assert prompt.chat_messages() == [{"role": "system", "content": prompt.system},
                                      {"role": "user", "content": prompt.user}]
