"""Automatic checks on a generated note: pure functions, thresholds in CheckThresholds.

Symptom recall is the lexical fallback of the paper's BERTScore recall: a symptom counts as
mentioned when enough of its content lemmas (medsyn_site.core.text) occur in the note.
Example precision is the share of the note's content lemmas found in the example (reported; a
minimum is optional). Near copy of the example uses character 5-gram Jaccard and the longest common
substring; memorisation of any real note is generation.memorisation's definition.
note_checks_run is the one entry point for a generated note, at generation and after every edit.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from difflib import SequenceMatcher
from typing import TYPE_CHECKING, Any

from medsyn_site.core.text import content_lemmas, words

if TYPE_CHECKING:
    from .bertscore import BertScorer
    from .memorisation import MemorisationIndex

LATIN_WORD = re.compile(r"\b[A-Za-z]{3,}\b")
CYRILLIC = re.compile(r"[А-Яа-яЁё]")
LETTER = re.compile(r"[^\W\d_]")
ARTIFACT_PATTERNS: dict[str, re.Pattern[str]] = {
    "AI self-reference": re.compile(r"\bas an ai\b|\bas a (large )?language model\b|\bi am an ai\b|"
                                    r"как (языковая модель|искусственный интеллект|ии\b)", re.IGNORECASE),
    "preamble 'Here is'": re.compile(r"^\s*(here is|here's|here are)\b", re.IGNORECASE),
    "preamble 'Вот'": re.compile(r"^\s*вот\b", re.IGNORECASE),
    "prompt markup": re.compile(r"###|<\|[a-z_]+\|>|\b(Задание|Вход|Ответ):", re.IGNORECASE),
}


@dataclass(frozen=True)
class CheckThresholds:
    """Defaults: the paper's recall threshold 0.65; the rest are ours."""

    symptom_recall_min: float = 0.65
    symptom_lemma_share_min: float = 0.5  # share of a symptom's content lemmas the note must contain
    example_precision_min: float | None = None
    near_copy_jaccard_max: float = 0.6
    bertscore_recall_min: float = 0.65  # the paper's thresholds, used when a scoring model is configured
    bertscore_precision_min: float = 0.7
    near_copy_substring_share_max: float = 0.5  # longest common substring / note length
    words_min: int = 10
    words_max: int = 800
    cyrillic_share_min: float = 0.8
    latin_share_min: float = 0.8
    english_words_max: int = 2
    prompt_echo_chars_min: int = 40
    allowed_latin_words: frozenset[str] = frozenset({"mg", "ml", "mmHg", "COVID", "SARS", "HIV", "BMI", "SpO"})

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> CheckThresholds:
        """Thresholds from a job's overrides or a note's stored thresholds; unknown names are ignored."""
        known = {f.name for f in fields(cls)}
        chosen = {name: value for name, value in values.items() if name in known}
        if "allowed_latin_words" in chosen:
            chosen["allowed_latin_words"] = frozenset(chosen["allowed_latin_words"])
        return cls(**chosen)

    def as_dict(self) -> dict[str, Any]:
        """Every threshold, JSON-ready, as a note's provenance keeps them (from_dict reads them back)."""
        return {**asdict(self), "allowed_latin_words": sorted(self.allowed_latin_words)}


@dataclass
class CheckReport:
    """Scores by name, pass/fail and the reasons for a failure."""

    scores: dict[str, float | int | None] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)
    symptoms_found: list[str] = field(default_factory=list)
    symptoms_missing: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.reasons

    def as_dict(self) -> dict:
        return {**asdict(self), "passed": self.passed}


def symptom_recall(note: str, symptoms: list[str], *, lemma_share_min: float = 0.5) -> tuple[float, list[str]]:
    """Share of symptoms mentioned in the note, and the mentioned ones."""
    note_lemmas = set(content_lemmas(note))
    found = []
    for symptom in symptoms:
        lemmas = set(content_lemmas(symptom))
        if lemmas and len(lemmas & note_lemmas) / len(lemmas) >= lemma_share_min:
            found.append(symptom)
    return (len(found) / len(symptoms) if symptoms else 1.0), found


def example_precision(note: str, example: str) -> float:
    """Share of the note's content lemmas (with repeats) that also occur in the example."""
    note_lemmas = content_lemmas(note)
    if not note_lemmas:
        return 0.0
    example_lemmas = set(content_lemmas(example))
    return sum(lemma in example_lemmas for lemma in note_lemmas) / len(note_lemmas)


def char_ngrams(text: str, n: int = 5) -> set[str]:
    flat = " ".join(text.lower().split())
    return {flat[i:i + n] for i in range(max(0, len(flat) - n + 1))}


def ngram_jaccard(first: str, second: str, n: int = 5) -> float:
    """Jaccard similarity of the character n-gram sets of two texts (case and spacing ignored)."""
    a, b = char_ngrams(first, n), char_ngrams(second, n)
    return len(a & b) / len(a | b) if a and b else 0.0


def longest_common_substring(first: str, second: str) -> int:
    """Length in characters of the longest run the two texts share (case and spacing ignored)."""
    a, b = " ".join(first.lower().split()), " ".join(second.lower().split())
    match = SequenceMatcher(None, a, b, autojunk=False).find_longest_match(0, len(a), 0, len(b))
    return match.size


def script_share(text: str, language: str) -> float:
    """Share of letters in the language's script: Cyrillic for ru, Latin for anything else."""
    letters = LETTER.findall(text)
    if not letters:
        return 0.0
    cyrillic = sum(bool(CYRILLIC.match(letter)) for letter in letters)
    return (cyrillic if language == "ru" else len(letters) - cyrillic) / len(letters)


def english_words(text: str, allowed: frozenset[str] = frozenset()) -> list[str]:
    """Latin words of 3+ letters in a Russian text, abbreviations (all capitals) and allowed words excepted."""
    allowed_lower = {word.lower() for word in allowed}
    return [word for word in LATIN_WORD.findall(text) if not word.isupper() and word.lower() not in allowed_lower]


def artifacts(note: str) -> list[str]:
    """Names of the ARTIFACT_PATTERNS found in the note."""
    return [name for name, pattern in ARTIFACT_PATTERNS.items() if pattern.search(note)]


def prompt_echo(note: str, prompt: str, *, inputs: list[str]) -> int:
    """Longest run of the prompt's own wording repeated in the note; the inputs (example, symptoms) are cut out
    of the prompt first, since a note is meant to reuse them."""
    wording = prompt
    for text in sorted((t for t in inputs if t.strip()), key=len, reverse=True):
        wording = wording.replace(text.strip(), "\n")
    return max((longest_common_substring(note, part) for part in wording.split("\n") if part.strip()), default=0)


def note_check(
    note: str,
    *,
    language: str = "ru",
    symptoms: list[str] | None = None,
    example: str = "",
    prompt: str = "",
    thresholds: CheckThresholds | None = None,
    real_notes: MemorisationIndex | None = None,
    scorer: BertScorer | None = None,
) -> CheckReport:
    """Every check on one note; report.passed is False with a reason for each threshold missed."""
    limits = thresholds or CheckThresholds()
    report = CheckReport()
    scores, reasons = report.scores, report.reasons

    word_count = len(words(note))
    scores["words"] = word_count
    if word_count < limits.words_min:
        reasons.append(f"too short: {word_count} words (minimum {limits.words_min})")
    if word_count > limits.words_max:
        reasons.append(f"too long: {word_count} words (maximum {limits.words_max})")

    share = script_share(note, language)
    scores["script_share"] = round(share, 4)
    share_min = limits.cyrillic_share_min if language == "ru" else limits.latin_share_min
    if share < share_min:
        reasons.append(f"wrong language: {share:.0%} of letters in the {language} script (minimum {share_min:.0%})")

    if symptoms:
        recall, found = symptom_recall(note, symptoms, lemma_share_min=limits.symptom_lemma_share_min)
        scores["symptom_recall"] = round(recall, 4)
        report.symptoms_found = found
        report.symptoms_missing = [s for s in symptoms if s not in found]
        if recall < limits.symptom_recall_min:
            reasons.append(f"symptom recall {recall:.2f} below {limits.symptom_recall_min:.2f}; missing: "
                           + "; ".join(report.symptoms_missing))

    if example.strip():
        precision = example_precision(note, example)
        jaccard = ngram_jaccard(note, example)
        substring_share = longest_common_substring(note, example) / max(1, len(note))
        scores.update(example_precision=round(precision, 4), example_jaccard=round(jaccard, 4),
                      example_substring_share=round(substring_share, 4))
        if limits.example_precision_min is not None and precision < limits.example_precision_min:
            reasons.append(f"example precision {precision:.2f} below {limits.example_precision_min:.2f}")
        if jaccard > limits.near_copy_jaccard_max or substring_share > limits.near_copy_substring_share_max:
            reasons.append(f"near copy of the example (5-gram Jaccard {jaccard:.2f}, "
                           f"longest shared run {substring_share:.0%} of the note)")

    if scorer is not None and symptoms:
        recall = scorer.score(note, "; ".join(symptoms)).recall
        scores["bertscore_recall"] = round(recall, 4)
        if recall < limits.bertscore_recall_min:
            reasons.append(f"BERTScore recall of the symptoms {recall:.2f} below {limits.bertscore_recall_min:.2f}")
    if scorer is not None and example.strip():
        precision = scorer.score(note, example).precision
        scores["bertscore_precision"] = round(precision, 4)
        if precision < limits.bertscore_precision_min:
            reasons.append(f"BERTScore precision against the example {precision:.2f} below "
                           f"{limits.bertscore_precision_min:.2f}")

    if real_notes is not None:
        memorisation = real_notes.check(note)
        scores.update(memorisation_longest_run=memorisation.longest_ngram,
                      memorisation_near_copy=round(memorisation.near_copy, 4),
                      closest_real_note=memorisation.real_note_id)
        if memorisation.flagged(real_notes.thresholds):
            reasons.append(f"memorised real note {memorisation.real_note_id} (longest shared run "
                           f"{memorisation.longest_ngram} words, {memorisation.near_copy:.0%} of the note's word "
                           f"{real_notes.thresholds.anchor_words}-grams in it)")

    if prompt.strip():
        echo = prompt_echo(note, prompt, inputs=[example, *(symptoms or [])])
        scores["prompt_echo_chars"] = echo
        if echo >= limits.prompt_echo_chars_min:
            reasons.append(f"prompt echo: {echo} characters of the prompt's wording repeated")

    found_artifacts = artifacts(note)
    if language == "ru":
        leftovers = english_words(note, limits.allowed_latin_words)
        scores["english_words"] = len(leftovers)
        if len(leftovers) > limits.english_words_max:
            found_artifacts.append("leftover English words: " + ", ".join(leftovers[:10]))
    reasons.extend(f"artifact: {name}" for name in found_artifacts)
    return report


def note_checks_run(
    *,
    text: str,
    language: str,
    provenance: dict[str, Any],
    real_notes: MemorisationIndex | None,
    scorer: BertScorer | None,
) -> dict[str, Any]:
    """The checks of a generated note, read from its provenance, as stored in its metadata["checks"].

    One rule for a new note and every edit of it: the symptoms and the example are checked only when the
    prompt contained them (provenance["prompt_inputs"]), the prompt's own wording is checked for echoes, and
    the thresholds are those the job used (provenance["check_thresholds"]; the defaults when none are kept,
    as for imported notes). A note with no prompt_inputs (imported) gets the checks that need no input.
    """
    inputs = provenance.get("prompt_inputs") or []
    symptoms = provenance.get("symptoms") if "symptoms" in inputs else None
    example = provenance.get("example_text") if "example" in inputs else None
    prompt = provenance.get("prompt")
    return note_check(
        text, language=language, symptoms=list(symptoms) if isinstance(symptoms, list) else [],
        example=example if isinstance(example, str) else "",
        prompt=f"{prompt.get('system', '')}\n{prompt.get('user', '')}" if isinstance(prompt, dict) else "",
        thresholds=CheckThresholds.from_dict(provenance.get("check_thresholds") or {}),
        real_notes=real_notes, scorer=scorer,
    ).as_dict()
