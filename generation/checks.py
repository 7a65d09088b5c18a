"""Automatic checks on a generated note: pure functions, thresholds in CheckThresholds.

Symptom recall is the lexical fallback of the paper's BERTScore recall: a symptom counts as
mentioned when enough of its content lemmas (pymorphy3 over razdel tokens) occur in the note.
Example precision is the share of the note's content lemmas found in the example (reported; a
minimum is optional). Near-copy uses character 5-gram Jaccard and the longest common substring.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from difflib import SequenceMatcher
from functools import lru_cache
from typing import TYPE_CHECKING

from razdel import tokenize

if TYPE_CHECKING:
    from .bertscore import BertScorer

CONTENT_POS_SKIPPED = frozenset({"PREP", "CONJ", "PRCL", "INTJ", "NPRO", "PRED"})
WORD = re.compile(r"^[^\W\d_]+(?:-[^\W\d_]+)*$")
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


@lru_cache(maxsize=1)
def _morph():
    import pymorphy3

    return pymorphy3.MorphAnalyzer(lang="ru")


@lru_cache(maxsize=50_000)
def _lemma(word: str) -> tuple[str, bool]:
    """Normal form of a word and whether it carries content (not a preposition, conjunction, particle...)."""
    parse = _morph().parse(word)[0]
    return parse.normal_form, parse.tag.POS not in CONTENT_POS_SKIPPED


def words(text: str) -> list[str]:
    """Lower-cased word tokens (razdel), numbers and punctuation left out."""
    return [token.text.lower() for token in tokenize(text) if WORD.match(token.text)]


def content_lemmas(text: str) -> list[str]:
    """Lemmas of the content words of text, in order (repeats kept)."""
    lemmas = []
    for word in words(text):
        lemma, is_content = _lemma(word)
        if is_content and len(lemma) > 1:
            lemmas.append(lemma)
    return lemmas


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


class RealNotesIndex:
    """Character 5-gram sets of every real note, read once, for near-copy (memorisation) checks."""

    def __init__(self, texts: list[tuple[int, str]]) -> None:
        self._grams = [(note_id, char_ngrams(text)) for note_id, text in texts]

    @classmethod
    def from_database(cls) -> RealNotesIndex:
        from .models import Note

        return cls(list(Note.objects.filter(origin=Note.Origin.REAL).values_list("id", "text")))

    def closest(self, text: str) -> tuple[int | None, float]:
        """(id of the most similar real note, its 5-gram Jaccard similarity)."""
        grams = char_ngrams(text)
        best_id, best = None, 0.0
        if not grams:
            return best_id, best
        for note_id, other in self._grams:
            if other:
                score = len(grams & other) / len(grams | other)
                if score > best:
                    best_id, best = note_id, score
        return best_id, best


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
    real_notes: RealNotesIndex | None = None,
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
        closest_id, similarity = real_notes.closest(note)
        scores["real_note_jaccard"] = round(similarity, 4)
        scores["closest_real_note"] = closest_id
        if similarity > limits.near_copy_jaccard_max:
            reasons.append(f"near copy of real note {closest_id} (5-gram Jaccard {similarity:.2f})")

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
