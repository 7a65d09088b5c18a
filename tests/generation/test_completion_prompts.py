"""Completion prompts for base models: the rendered text, the lead-in, the cut at the blank line, and the local
backend's completion mode (no chat template; each sequence of a batch stops at its first blank line)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from generation.backends.base import GenerationRequest
from generation.backends.local_backend import LocalBackend, length_batches
from generation.models import ModelConfig, PromptTemplate
from generation.prompts import (
    CHAT_TEMPLATES,
    COMPLETION_TEMPLATES,
    DEFAULT_TEMPLATES,
    LEAD_INS,
    completion_cut,
    completion_ended,
    completion_text,
    prompt_build,
    prompt_build_from_template,
    template_fields,
    template_is_completion,
    template_name_default,
)

COMPLETION = {(t["variant"], t["language"]): t for t in COMPLETION_TEMPLATES}
SYMPTOMS = ["кашель с мокротой", "температура 38", "слабость"]
EXAMPLE = "Жалобы на кашель, насморк и повышение температуры до 38 градусов в течение двух дней."


def build(variant: str, language: str = "ru", seed: int = 17, **inputs):
    template = COMPLETION[(variant, language)]
    return prompt_build(system_text=template["system_text"], user_text=template["user_text"], variant=variant,
                        language=language, rng=random.Random(seed), completion=True, **inputs)


def test_the_symptoms_and_example_completion_prompt_renders_its_inputs_then_the_lead_in():
    prompt = build("symptoms_example", symptoms=SYMPTOMS, example=EXAMPLE, disease_name="Острый бронхит", code="J20")
    assert (prompt.sex, prompt.age) == ("female", 56)
    assert prompt.completion_text() == (
        "Медицинские карты пациентов с заболеванием «Острый бронхит» (J20).\n"
        "\n"
        "Пациент 1.\n"
        "Жалобы пациента: Жалобы на кашель, насморк и повышение температуры до 38 градусов в течение двух дней.\n"
        "\n"
        "Пациент 2 — женщина, 56 лет. Симптомы: кашель с мокротой; температура 38; слабость.\n"
        "Жалобы пациента:"
    )


def test_the_code_and_symptoms_completion_prompts_golden():
    code = build("code", seed=3, disease_name="Острый бронхит", code="J20")
    assert code.completion_text() == ("Медицинская карта пациента.\n\n"
                                      "Пациент — мужчина, 34 года. Диагноз: Острый бронхит (J20).\nЖалобы пациента:")
    english = build("symptoms", language="en", seed=3, symptoms=["cough", "fever"])
    assert english.completion_text() == ("Medical record of a patient.\n\n"
                                         "Patient, a man aged 34. Symptoms: cough; fever.\nPatient's complaints:")


def test_a_completion_template_without_a_lead_in_gets_its_languages_and_keeps_its_own():
    rng = random.Random(1)
    plain = prompt_build(system_text="", user_text="Симптомы: {symptoms}.", variant="symptoms", language="ru",
                         rng=rng, symptoms=SYMPTOMS, completion=True)
    assert plain.user.endswith(".\nЖалобы пациента:") and plain.completion_text() == plain.user
    own = prompt_build(system_text="Карта.", user_text="Симптомы: {symptoms}.\nАнамнез заболевания:",
                       variant="symptoms", language="ru", rng=rng, symptoms=SYMPTOMS, completion=True)
    assert own.user.endswith(".\nАнамнез заболевания:") and "Жалобы пациента" not in own.user
    english = prompt_build(system_text="", user_text="Symptoms: {symptoms}.", variant="symptoms", language="en",
                           rng=rng, symptoms=["cough"], completion=True)
    assert english.user == "Symptoms: cough.\nPatient's complaints:"
    instruction = prompt_build(system_text="", user_text="Симптомы: {symptoms}.", variant="symptoms", language="ru",
                               rng=rng, symptoms=SYMPTOMS)
    assert instruction.user == "Симптомы: кашель с мокротой; температура 38; слабость."


@pytest.mark.parametrize(("generated", "note"), [
    (" на боли в пояснице, усиливающиеся при наклоне.\n\nПациент 3 — мужчина", "На боли в пояснице, усиливающиеся "
                                                                              "при наклоне."),
    (" кашель\nс мокротой.\n \t\nПациент 3", "Кашель\nс мокротой."),  # a line of spaces is blank too
    ("\n\n боль в горле.\n\nПациент", "Боль в горле."),  # blank lines before any text do not end the note
    (" Жалобы пациента: слабость, одышка.", "Слабость, одышка."),  # the lead-in echoed back
    (" слабость, одышка", "Слабость, одышка"),  # no blank line yet: all of it
])
def test_the_note_is_the_continuation_up_to_the_first_blank_line(generated, note):
    assert completion_cut(generated, "Жалобы пациента:") == note


def test_a_continuation_has_ended_at_a_blank_line_after_some_text():
    assert completion_ended("боль.\n\nПациент") and completion_ended("боль.\n  \n")
    assert not completion_ended("боль.\nкашель") and not completion_ended("\n\n") and not completion_ended(" \n \n")


def test_every_variant_and_language_has_a_completion_and_an_instruction_default():
    pairs = {(variant, language) for variant in PromptTemplate.Variant.values for language in ("ru", "en")}
    assert {(t["variant"], t["language"]) for t in COMPLETION_TEMPLATES} == pairs
    assert {(t["variant"], t["language"]) for t in CHAT_TEMPLATES} == pairs
    assert len(DEFAULT_TEMPLATES) == len({t["name"] for t in DEFAULT_TEMPLATES}) == 2 * len(pairs)
    for template in COMPLETION_TEMPLATES:
        variant, language = template["variant"], template["language"]
        assert template["name"] == template_name_default(variant=variant, language=language, completion=True)
        assert template_is_completion(template["name"]) and template["user_text"].endswith(LEAD_INS[language])
        fields = template_fields(template["system_text"]) | template_fields(template["user_text"])
        assert {"symptoms_example": {"example", "symptoms"}, "symptoms": {"symptoms"},
                "code": {"disease", "code"}}[variant] <= fields
    assert not any(template_is_completion(t["name"]) for t in CHAT_TEMPLATES)


@pytest.mark.django_db
def test_a_completion_template_record_builds_a_completion_prompt():
    completion = PromptTemplate.objects.create(name="mine-completion", variant="symptoms", language="ru",
                                               system_text="Карта.", user_text="Симптомы: {symptoms}.")
    instruction = PromptTemplate.objects.create(name="mine", variant="symptoms", language="ru",
                                                system_text="Карта.", user_text="Симптомы: {symptoms}.")
    built = prompt_build_from_template(completion, rng=random.Random(1), symptoms=SYMPTOMS)
    assert built.user.endswith("\nЖалобы пациента:")
    assert prompt_build_from_template(instruction, rng=random.Random(1), symptoms=SYMPTOMS).user.endswith("слабость.")


def _config(path: Path, prompt_format: str, **fields) -> ModelConfig:
    """An unsaved local configuration (the backend needs no database row)."""
    return ModelConfig(name=f"{path.name}-{prompt_format}", backend="local", model_path=str(path),
                       prompt_format=prompt_format, **{"temperature": 0.0, "max_new_tokens": 12, **fields})


def test_the_backend_gives_a_base_model_the_completion_text_and_no_chat_template(tiny_model_dir):
    prompt = build("symptoms", symptoms=SYMPTOMS)
    request = GenerationRequest(key="1", system=prompt.system, user=prompt.user)
    base = LocalBackend(_config(tiny_model_dir, "completion"))
    tokenizer = base.loaded.tokenizer
    assert base.prompt_ids(request) == tokenizer(completion_text(prompt.system, prompt.user))["input_ids"]
    assert "<|user|>" not in tokenizer.decode(base.prompt_ids(request))
    assert "<|user|>" in tokenizer.decode(LocalBackend(_config(tiny_model_dir, "chat")).prompt_ids(request))


def test_the_backend_stops_each_sequence_of_a_batch_at_its_blank_line(scripted_model_dir):
    prompts = [build("symptoms", seed=seed, symptoms=SYMPTOMS[:n]) for seed, n in ((1, 1), (2, 3))]
    requests = [GenerationRequest(key=str(i), system=p.system, user=p.user) for i, p in enumerate(prompts)]

    results = LocalBackend(_config(scripted_model_dir, "completion", batch_size=2)).generate(requests)

    assert [(r.text, r.completion_tokens, r.error) for r in results] == [("На", 3, None), ("На", 3, None)]
    # The same model as an instruct model writes on to max_new_tokens, through the blank lines.
    chat = LocalBackend(_config(scripted_model_dir, "alpaca", batch_size=2)).generate(requests[:1])[0]
    assert chat.completion_tokens == 12 and chat.text.startswith("на\n\nт")


def test_batches_are_cut_where_one_long_prompt_would_pad_the_others():
    """Prompts of 150 tokens beside one of 850: padding all to 850 cost 3.5x their own prefill (Gemma, measured)."""
    lengths = [850, 150, 160, 170, 455, 180, 715, 274]
    assert [[lengths[i] for i in batch] for batch in length_batches(lengths, 16)] == [
        [150, 160, 170, 180, 274], [455, 715, 850]]
    assert length_batches([5, 5, 5, 5, 5], 2) == [[0, 1], [2, 3], [4]] and length_batches([], 4) == []
