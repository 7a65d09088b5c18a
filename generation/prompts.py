"""Prompt Manager: the default MedSyn templates, prompt building and the wire formats (chat, Alpaca, completion).

Templates use str.format placeholders from TEMPLATE_FIELDS. A built prompt longer than
PROMPT_MAX_CHARS (system + user text) is refused, as the authors skipped such prompts.

Instruct models get the method's instructions (chat or Alpaca). A base model (Gemma 3 270M, the embedded Russian
default) follows no instruction: it continues text. Its templates are completion templates (named with
COMPLETION_SUFFIX): a short header, the variant's inputs (an example note, the code, the symptoms) and a lead-in such
as "Жалобы пациента:" that the model continues; its note ends at the first blank line.
"""

from __future__ import annotations

import random
import re
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

# A completion template's own lead-in is the last line of its user text when that line ends with a colon; otherwise
# the language's lead-in is added. The model's note is what follows it, up to the first blank line.
COMPLETION_SUFFIX = "-completion"
LEAD_INS = {"ru": "Жалобы пациента:", "en": "Patient's complaints:"}
BLANK_LINE = re.compile(r"\n[ \t]*\n")

SEX_WORDS = {"ru": {"male": "мужчина", "female": "женщина"}, "en": {"male": "man", "female": "woman"}}

_SYSTEM_RU = (
    "Используй только перечисленные симптомы. Не давай общего описания заболевания. "
    "Не пиши приветствий, примечаний и вопросов, не упоминай врача. Отвечай на русском языке."
)
_SYSTEM_EN = (
    "Use only the listed symptoms. Do not give a general description of the disease. "
    "No greetings, notes or questions, and do not mention the doctor. Answer in English."
)

# Completion templates for base models, one per variant and language (the names end with COMPLETION_SUFFIX). The
# example note is shown after the same lead-in the model continues, so the model sees where a note starts and ends.
COMPLETION_TEMPLATES: list[dict[str, str]] = [
    {
        "name": "default-symptoms_example-ru-completion", "variant": "symptoms_example", "language": "ru",
        "system_text": "Медицинские карты пациентов с заболеванием «{disease}» ({code}).",
        "user_text": "Пациент 1.\nЖалобы пациента: {example}\n\n"
                     "Пациент 2 — {sex}, {age}. Симптомы: {symptoms}.\nЖалобы пациента:",
    },
    {
        "name": "default-symptoms-ru-completion", "variant": "symptoms", "language": "ru",
        "system_text": "Медицинская карта пациента.",
        "user_text": "Пациент — {sex}, {age}. Симптомы: {symptoms}.\nЖалобы пациента:",
    },
    {
        "name": "default-code-ru-completion", "variant": "code", "language": "ru",
        "system_text": "Медицинская карта пациента.",
        "user_text": "Пациент — {sex}, {age}. Диагноз: {disease} ({code}).\nЖалобы пациента:",
    },
    {
        "name": "default-symptoms_example-en-completion", "variant": "symptoms_example", "language": "en",
        "system_text": "Medical records of patients with the disease \"{disease}\" ({code}).",
        "user_text": "Patient 1.\nPatient's complaints: {example}\n\n"
                     "Patient 2, a {sex} aged {age}. Symptoms: {symptoms}.\nPatient's complaints:",
    },
    {
        "name": "default-symptoms-en-completion", "variant": "symptoms", "language": "en",
        "system_text": "Medical record of a patient.",
        "user_text": "Patient, a {sex} aged {age}. Symptoms: {symptoms}.\nPatient's complaints:",
    },
    {
        "name": "default-code-en-completion", "variant": "code", "language": "en",
        "system_text": "Medical record of a patient.",
        "user_text": "Patient, a {sex} aged {age}. Diagnosis: {disease} ({code}).\nPatient's complaints:",
    },
]

# The method's templates for instruct models (chat or Alpaca).
CHAT_TEMPLATES: list[dict[str, str]] = [
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

# Every default template the data migration and `generation_defaults` create. The completion ones come first only so
# that a lookup of this list by (variant, language) that keeps the last entry finds the method's templates.
DEFAULT_TEMPLATES: list[dict[str, str]] = [*COMPLETION_TEMPLATES, *CHAT_TEMPLATES]


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

    def completion_text(self) -> str:
        return completion_text(self.system, self.user)


def chat_messages(system: str, user: str) -> list[dict[str, str]]:
    """System + user messages for instruct models; no system message when it is empty."""
    messages = [{"role": "system", "content": system}] if system else []
    return [*messages, {"role": "user", "content": user}]


def alpaca_wrap(instruction: str, input_text: str) -> str:
    """The Alpaca-style wrapper the MedSyn LLaMA models were fine-tuned on."""
    return ALPACA_TEMPLATE.format(instruction=instruction, input=input_text)


def completion_text(system: str, user: str) -> str:
    """The text a base model continues: the header, a blank line, then the body ending in its lead-in."""
    return f"{system}\n\n{user}" if system else user


def completion_lead_in(user: str) -> str:
    """The lead-in a completion prompt ends with (its last line)."""
    return user.rstrip().rsplit("\n", 1)[-1].strip()


def completion_lead_in_ensure(user: str, language: str) -> str:
    """user as a completion body: kept when its last line is a lead-in (ends with a colon), else with the language's
    lead-in ("Жалобы пациента:") on a line of its own."""
    user = user.rstrip()
    if completion_lead_in(user).endswith(":"):
        return user
    return f"{user}\n{LEAD_INS.get(language, LEAD_INS['en'])}"


def completion_ended(text: str) -> bool:
    """Whether a continuation has reached the blank line that ends its note (blank lines before any text do not)."""
    return BLANK_LINE.search(text.lstrip()) is not None


def completion_cut(text: str, lead_in: str = "") -> str:
    """The note in a base model's continuation: up to the first blank line, without an echo of the lead-in (the model
    may write "Жалобы пациента:" again), with a capital first letter (it continues "…пациента: на боли …")."""
    text = BLANK_LINE.split(text.lstrip(), maxsplit=1)[0].strip()
    if lead_in and text.casefold().startswith(lead_in.casefold()):
        text = text[len(lead_in):].strip()
    return text[:1].upper() + text[1:]


def template_is_completion(name: str) -> bool:
    """Whether the template named name is a completion template (for base models) rather than an instruction."""
    return name.endswith(COMPLETION_SUFFIX)


def template_name_default(*, variant: str, language: str, completion: bool = False) -> str:
    """The name of the default template for a variant and language, the completion one for a base model."""
    return f"default-{variant}-{language}{COMPLETION_SUFFIX if completion else ''}"


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
    completion: bool = False,
) -> BuiltPrompt:
    """Fill a template; the same RNG state gives the same prompt. Raises PromptTooLongError past max_chars.
    completion: a completion template, whose user text must end in a lead-in (completion_lead_in_ensure)."""
    sex, age = patient_draw(rng)
    values: dict[str, Any] = {
        "example": example.strip(),
        "symptoms": SYMPTOM_SEPARATOR.join(s.strip() for s in symptoms or [] if s.strip()),
        "sex": SEX_WORDS.get(language, SEX_WORDS["en"])[sex],
        "age": age_phrase(age, language),
        "disease": disease_name,
        "code": code,
    }
    user = user_text.format(**values)
    if completion:
        user = completion_lead_in_ensure(user, language)
    built = BuiltPrompt(system=system_text.format(**values), user=user, variant=variant, language=language, sex=sex,
                        age=age)
    if built.length > max_chars:
        raise PromptTooLongError(built.length, max_chars)
    return built


def prompt_build_from_template(template: PromptTemplate, *, rng: random.Random, **inputs: Any) -> BuiltPrompt:
    """prompt_build with the texts, variant and language of a PromptTemplate record (and its style, by its name)."""
    return prompt_build(system_text=template.system_text, user_text=template.user_text, variant=template.variant,
                        language=template.language, rng=rng, completion=template_is_completion(template.name),
                        **inputs)
