"""Prompt Manager: the default MedSyn templates, prompt building and the two wire formats (chat, Alpaca).

Templates use str.format placeholders from TEMPLATE_FIELDS. A built prompt longer than
PROMPT_MAX_CHARS (system + user text) is refused, as the authors skipped such prompts.
"""

from __future__ import annotations

import random
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .models import PromptTemplate

PROMPT_MAX_CHARS = 6000
SYMPTOM_SEPARATOR = "; "
AGE_RANGE = (18, 85)  # ours: the paper does not say how ages were drawn
TEMPLATE_FIELDS = frozenset({"example", "symptoms", "sex", "age", "disease", "code"})
ALPACA_TEMPLATE = "### Задание: {instruction}\n### Вход: {input}\n### Ответ: "

SEX_WORDS = {"ru": {"male": "мужчина", "female": "женщина"}, "en": {"male": "man", "female": "woman"}}

_SYSTEM_RU = (
    "Используй только перечисленные симптомы. Не давай общего описания заболевания. "
    "Не пиши приветствий, примечаний и вопросов, не упоминай врача. Отвечай на русском языке."
)
_SYSTEM_EN = (
    "Use only the listed symptoms. Do not give a general description of the disease. "
    "No greetings, notes or questions, and do not mention the doctor. Answer in English."
)

DEFAULT_TEMPLATES: list[dict[str, str]] = [
    {
        "name": "default-symptoms_example-ru", "variant": "symptoms_example", "language": "ru",
        "system_text": "Используй только перечисленные симптомы. Не давай общего описания заболевания. "
                       "Следуй стилю примера, но не копируй его факты. Не пиши приветствий, примечаний и "
                       "вопросов, не упоминай врача. Отвечай на русском языке.",
        "user_text": "Представь, что ты врач. Вот анамнез пациента: {example}\n"
                     "Напиши похожий анамнез примерно такой же длины для другого пациента с тем же заболеванием, "
                     "заменив часть симптомов на все следующие: {symptoms}. "
                     "Текст должен отличаться от исходного и быть медицински корректным.",
    },
    {
        "name": "default-symptoms-ru", "variant": "symptoms", "language": "ru",
        "system_text": "Напиши жалобы и анамнез пациента для медицинской карты. " + _SYSTEM_RU,
        "user_text": "Пациент — {sex} в возрасте {age}, жалуется на: {symptoms}.",
    },
    {
        "name": "default-code-ru", "variant": "code", "language": "ru",
        "system_text": "Напиши жалобы и анамнез пациента для медицинской карты. Не пиши приветствий, примечаний "
                       "и вопросов, не упоминай врача. Отвечай на русском языке.",
        "user_text": "Пациент — {sex} в возрасте {age} с заболеванием «{disease}» ({code}).",
    },
    {
        "name": "default-symptoms_example-en", "variant": "symptoms_example", "language": "en",
        "system_text": "Use only the listed symptoms. Do not give a general description of the disease. "
                       "Follow the example's style without copying its facts. No greetings, notes or questions, "
                       "and do not mention the doctor. Answer in English.",
        "user_text": "Imagine you are a doctor. Here is a patient's anamnesis: {example}\n"
                     "Write a similar one, about as long, for another patient with the same disease, replacing "
                     "part of the symptoms with all of these: {symptoms}. "
                     "It must differ from the source and be medically correct.",
    },
    {
        "name": "default-symptoms-en", "variant": "symptoms", "language": "en",
        "system_text": "Write the complaints and history of a patient for a medical record. " + _SYSTEM_EN,
        "user_text": "The patient is a {sex} aged {age} who complains of: {symptoms}.",
    },
    {
        "name": "default-code-en", "variant": "code", "language": "en",
        "system_text": "Write the complaints and history of a patient for a medical record. No greetings, notes "
                       "or questions, and do not mention the doctor. Answer in English.",
        "user_text": "The patient is a {sex} aged {age} with the disease \"{disease}\" ({code}).",
    },
]


class PromptTooLongError(ValueError):
    """A built prompt is over PROMPT_MAX_CHARS; the item is skipped with skip_reason."""

    def __init__(self, length: int, limit: int = PROMPT_MAX_CHARS) -> None:
        self.length = length
        self.limit = limit
        self.skip_reason = f"prompt too long: {length} characters (limit {limit})"
        super().__init__(self.skip_reason)


@dataclass(frozen=True)
class BuiltPrompt:
    system: str
    user: str
    variant: str
    language: str
    sex: str
    age: int

    @property
    def length(self) -> int:
        return len(self.system) + len(self.user)

    def chat_messages(self) -> list[dict[str, str]]:
        return chat_messages(self.system, self.user)

    def alpaca_text(self) -> str:
        return alpaca_wrap(self.system, self.user)


def chat_messages(system: str, user: str) -> list[dict[str, str]]:
    """System + user messages for instruct models; no system message when it is empty."""
    messages = [{"role": "system", "content": system}] if system else []
    return [*messages, {"role": "user", "content": user}]


def alpaca_wrap(instruction: str, input_text: str) -> str:
    """The Alpaca-style wrapper the MedSyn LLaMA models were fine-tuned on."""
    return ALPACA_TEMPLATE.format(instruction=instruction, input=input_text)


def template_fields(text: str) -> set[str]:
    """Placeholder names used in a template text (raises ValueError on a malformed format string)."""
    return {field for _, field, _, _ in string.Formatter().parse(text) if field is not None}


def template_fields_check(*texts: str) -> None:
    """Raise ValueError naming any placeholder the Prompt Manager cannot fill."""
    for text in texts:
        unknown = template_fields(text) - TEMPLATE_FIELDS
        if unknown:
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; allowed: {sorted(TEMPLATE_FIELDS)}")


def age_phrase(age: int, language: str) -> str:
    """'45 лет', '21 год', '33 года' in Russian; the bare number in English."""
    if language != "ru":
        return str(age)
    if age % 10 == 1 and age % 100 != 11:
        word = "год"
    elif 2 <= age % 10 <= 4 and not 12 <= age % 100 <= 14:
        word = "года"
    else:
        word = "лет"
    return f"{age} {word}"


def patient_draw(rng: random.Random) -> tuple[str, int]:
    """Sex and age of the imagined patient, drawn from the caller's seeded RNG."""
    return rng.choice(("male", "female")), rng.randint(*AGE_RANGE)


def prompt_build(
    *,
    system_text: str,
    user_text: str,
    variant: str,
    language: str,
    rng: random.Random,
    symptoms: list[str] | None = None,
    example: str = "",
    disease_name: str = "",
    code: str = "",
    max_chars: int = PROMPT_MAX_CHARS,
) -> BuiltPrompt:
    """Fill a template; the same RNG state gives the same prompt. Raises PromptTooLongError past max_chars."""
    sex, age = patient_draw(rng)
    values: dict[str, Any] = {
        "example": example.strip(),
        "symptoms": SYMPTOM_SEPARATOR.join(s.strip() for s in symptoms or [] if s.strip()),
        "sex": SEX_WORDS.get(language, SEX_WORDS["en"])[sex],
        "age": age_phrase(age, language),
        "disease": disease_name,
        "code": code,
    }
    built = BuiltPrompt(system=system_text.format(**values), user=user_text.format(**values), variant=variant,
                        language=language, sex=sex, age=age)
    if built.length > max_chars:
        raise PromptTooLongError(built.length, max_chars)
    return built


def prompt_build_from_template(template: PromptTemplate, *, rng: random.Random, **inputs: Any) -> BuiltPrompt:
    """prompt_build with the texts, variant and language of a PromptTemplate record."""
    return prompt_build(system_text=template.system_text, user_text=template.user_text, variant=template.variant,
                        language=template.language, rng=rng, **inputs)
