"""Automatic checks on a generated note: pure functions, thresholds in CheckThresholds.

Symptom recall is the lexical fallback of the paper's BERTScore recall: a symptom counts as
mentioned when enough of its content lemmas (medsyn_site.core.text) occur in the note.
Example precision is the share of the note's content lemmas found in the example (reported; a
minimum is optional). Near copy of the example uses character 5-gram Jaccard and the longest common
substring; memorisation of any real note is generation.memorisation's definition.
note_checks_run is the one entry point for a generated note, at generation and after every edit.

Each score and each reason a note fails has its words here too (CHECK_SCORES, FAILURES): a note's metadata keeps the
scores by name and the reasons as English sentences (releases and exports read them), with each failure's code and
values beside them, so that a page shows both in the reader's language (check_scores_shown, check_reasons_shown).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from difflib import SequenceMatcher
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, gettext_noop

from medsyn_site.core.text import content_lemmas, words

if TYPE_CHECKING:
    from .bertscore import BertScorer
    from .memorisation import MemorisationIndex

LATIN_WORD = re.compile(r"\b[A-Za-z]{3,}\b")
CYRILLIC = re.compile(r"[А-Яа-яЁё]")
LETTER = re.compile(r"[^\W\d_]")
# By name: the English name a note's reasons keep, and the msgid its page translates.
ARTIFACT_PATTERNS: dict[str, re.Pattern[str]] = {
    gettext_noop("AI self-reference"): re.compile(r"\bas an ai\b|\bas a (large )?language model\b|\bi am an ai\b|"
                                                  r"как (языковая модель|искусственный интеллект|ии\b)", re.IGNORECASE),
    gettext_noop("preamble 'Here is'"): re.compile(r"^\s*(here is|here's|here are)\b", re.IGNORECASE),
    gettext_noop("preamble 'Вот'"): re.compile(r"^\s*вот\b", re.IGNORECASE),
    gettext_noop("prompt markup"): re.compile(r"###|<\|[a-z_]+\|>|\b(Задание|Вход|Ответ):", re.IGNORECASE),
}


@dataclass(frozen=True)
class CheckScore:
    """What a score of CheckReport.scores is, in words: a label, a sentence for who wants to know more, and how its
    value is written (share: a percentage; similarity: two decimals; count; note: a note's id)."""

    label: str
    description: str
    kind: str


CHECK_SCORES: dict[str, CheckScore] = {
    "words": CheckScore(gettext_lazy("Length in words"), gettext_lazy(
        "Words in the note; shorter than the job's minimum or longer than its maximum fails."), "count"),
    "script_share": CheckScore(gettext_lazy("Letters in the note's alphabet"), gettext_lazy(
        "Share of the letters in the alphabet of the note's language (Cyrillic for Russian, Latin otherwise)."),
        "share"),
    "symptom_recall": CheckScore(gettext_lazy("Symptoms mentioned"), gettext_lazy(
        "Share of the sampled symptoms the note mentions in any word form (the paper's threshold is 65%)."), "share"),
    "example_precision": CheckScore(gettext_lazy("Words shared with the example"), gettext_lazy(
        "Share of the note's content words that also occur in the example note."), "share"),
    "example_jaccard": CheckScore(gettext_lazy("Overlap with the example"), gettext_lazy(
        "Character 5-gram similarity with the example note, from 0 to 1; above the maximum the note is a near copy."),
        "similarity"),
    "example_substring_share": CheckScore(gettext_lazy("Longest passage copied from the example"), gettext_lazy(
        "The longest passage the note shares with the example, as a share of the note's length."), "share"),
    "bertscore_recall": CheckScore(gettext_lazy("Symptoms covered (BERTScore)"), gettext_lazy(
        "BERTScore recall of the sampled symptoms in the note, from 0 to 1."), "similarity"),
    "bertscore_precision": CheckScore(gettext_lazy("Closeness to the example (BERTScore)"), gettext_lazy(
        "BERTScore precision of the note against the example note, from 0 to 1."), "similarity"),
    "memorisation_longest_run": CheckScore(gettext_lazy("Longest passage shared with a real note"), gettext_lazy(
        "The longest run of words the note shares with any real note."), "count"),
    "memorisation_near_copy": CheckScore(gettext_lazy("Copied from the closest real note"), gettext_lazy(
        "Share of the note's word n-grams found in the closest real note."), "share"),
    "closest_real_note": CheckScore(gettext_lazy("Closest real note"), gettext_lazy(
        "The real note that shares the most with this one."), "note"),
    "prompt_echo_chars": CheckScore(gettext_lazy("Prompt wording repeated"), gettext_lazy(
        "Characters of the prompt's own instructions the note repeats (its inputs, symptoms and example, excepted)."),
        "count"),
    "english_words": CheckScore(gettext_lazy("Leftover English words"), gettext_lazy(
        "Latin-script words in a Russian note, abbreviations and units excepted."), "count"),
}

# Why a note fails, by code: the English sentence kept in its reasons and the msgid of its page, with the same named
# values (numbers already written as the note's reasons write them).
FAILURES: dict[str, str] = {
    "too_short": gettext_noop("too short: %(words)s words (minimum %(minimum)s)"),
    "too_long": gettext_noop("too long: %(words)s words (maximum %(maximum)s)"),
    "wrong_language_cyrillic": gettext_noop(
        "wrong language: %(share)s of letters in the Cyrillic alphabet (minimum %(minimum)s)"),
    "wrong_language_latin": gettext_noop(
        "wrong language: %(share)s of letters in the Latin alphabet (minimum %(minimum)s)"),
    "symptom_recall": gettext_noop("symptom recall %(recall)s below %(minimum)s; missing: %(missing)s"),
    "example_precision": gettext_noop("example precision %(precision)s below %(minimum)s"),
    "near_copy": gettext_noop(
        "near copy of the example (5-gram Jaccard %(jaccard)s, longest shared run %(share)s of the note)"),
    "bertscore_recall": gettext_noop("BERTScore recall of the symptoms %(recall)s below %(minimum)s"),
    "bertscore_precision": gettext_noop("BERTScore precision against the example %(precision)s below %(minimum)s"),
    "memorised": gettext_noop("memorised real note %(note)s (longest shared run %(words)s words, %(share)s of the "
                              "note's word %(n)s-grams in it)"),
    "prompt_echo": gettext_noop("prompt echo: %(chars)s characters of the prompt's wording repeated"),
    "artifact": gettext_noop("artifact: %(name)s"),
    "english_words": gettext_noop("artifact: leftover English words: %(words)s"),
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
    failures: list[dict[str, str]] = field(default_factory=list)  # {"code": a FAILURES code, its values}, by reason
    symptoms_found: list[str] = field(default_factory=list)
    symptoms_missing: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.reasons

    def fail(self, code: str, **values: object) -> None:
        """A reason the note fails: its English sentence in reasons, its code and values in failures."""
        written = {name: str(value) for name, value in values.items()}
        self.reasons.append(FAILURES[code] % written)
        self.failures.append({"code": code, **written})

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
    scores = report.scores

    word_count = len(words(note))
    scores["words"] = word_count
    if word_count < limits.words_min:
        report.fail("too_short", words=word_count, minimum=limits.words_min)
    if word_count > limits.words_max:
        report.fail("too_long", words=word_count, maximum=limits.words_max)

    share = script_share(note, language)
    scores["script_share"] = round(share, 4)
    share_min = limits.cyrillic_share_min if language == "ru" else limits.latin_share_min
    if share < share_min:
        report.fail("wrong_language_cyrillic" if language == "ru" else "wrong_language_latin", share=f"{share:.0%}",
                    minimum=f"{share_min:.0%}")

    if symptoms:
        recall, found = symptom_recall(note, symptoms, lemma_share_min=limits.symptom_lemma_share_min)
        scores["symptom_recall"] = round(recall, 4)
        report.symptoms_found = found
        report.symptoms_missing = [s for s in symptoms if s not in found]
        if recall < limits.symptom_recall_min:
            report.fail("symptom_recall", recall=f"{recall:.2f}", minimum=f"{limits.symptom_recall_min:.2f}",
                        missing="; ".join(report.symptoms_missing))

    if example.strip():
        precision = example_precision(note, example)
        jaccard = ngram_jaccard(note, example)
        substring_share = longest_common_substring(note, example) / max(1, len(note))
        scores.update(example_precision=round(precision, 4), example_jaccard=round(jaccard, 4),
                      example_substring_share=round(substring_share, 4))
        if limits.example_precision_min is not None and precision < limits.example_precision_min:
            report.fail("example_precision", precision=f"{precision:.2f}",
                        minimum=f"{limits.example_precision_min:.2f}")
        if jaccard > limits.near_copy_jaccard_max or substring_share > limits.near_copy_substring_share_max:
            report.fail("near_copy", jaccard=f"{jaccard:.2f}", share=f"{substring_share:.0%}")

    if scorer is not None and symptoms:
        recall = scorer.score(note, "; ".join(symptoms)).recall
        scores["bertscore_recall"] = round(recall, 4)
        if recall < limits.bertscore_recall_min:
            report.fail("bertscore_recall", recall=f"{recall:.2f}", minimum=f"{limits.bertscore_recall_min:.2f}")
    if scorer is not None and example.strip():
        precision = scorer.score(note, example).precision
        scores["bertscore_precision"] = round(precision, 4)
        if precision < limits.bertscore_precision_min:
            report.fail("bertscore_precision", precision=f"{precision:.2f}",
                        minimum=f"{limits.bertscore_precision_min:.2f}")

    if real_notes is not None:
        memorisation = real_notes.check(note)
        scores.update(memorisation_longest_run=memorisation.longest_ngram,
                      memorisation_near_copy=round(memorisation.near_copy, 4),
                      closest_real_note=memorisation.real_note_id)
        if memorisation.flagged(real_notes.thresholds):
            report.fail("memorised", note=memorisation.real_note_id, words=memorisation.longest_ngram,
                        share=f"{memorisation.near_copy:.0%}", n=real_notes.thresholds.anchor_words)

    if prompt.strip():
        echo = prompt_echo(note, prompt, inputs=[example, *(symptoms or [])])
        scores["prompt_echo_chars"] = echo
        if echo >= limits.prompt_echo_chars_min:
            report.fail("prompt_echo", chars=echo)

    for name in artifacts(note):
        report.fail("artifact", name=name)
    if language == "ru":
        leftovers = english_words(note, limits.allowed_latin_words)
        scores["english_words"] = len(leftovers)
        if len(leftovers) > limits.english_words_max:
            report.fail("english_words", words=", ".join(leftovers[:10]))
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


@dataclass(frozen=True)
class ScoreShown:
    """One score of a note's checks as a page shows it: name (the key kept in its metadata), label, description and
    the value written for a reader."""

    name: str
    label: str
    description: str
    value: str


def check_scores_shown(checks: dict[str, Any] | None) -> list[ScoreShown]:
    """The scores of a note's stored checks (metadata["checks"]) in words, in the order they were measured; a score
    this version does not know keeps its name as its label."""
    scores = (checks or {}).get("scores") or {}
    shown = []
    for name, value in scores.items() if isinstance(scores, dict) else ():
        known = CHECK_SCORES.get(name)
        label, description = (str(known.label), str(known.description)) if known else (name, "")
        shown.append(ScoreShown(name=name, label=label, description=description,
                                value=_score_written(value, known.kind if known else "")))
    return shown


def _score_written(value: Any, kind: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if kind == "share":
        return f"{value:.0%}"
    if kind == "similarity":
        return f"{value:.2f}"
    if kind == "note":
        return _("note %(id)s") % {"id": value}
    return str(value)


def check_reasons_shown(checks: dict[str, Any] | None) -> list[str]:
    """Why a note failed its checks, in the reader's language: each failure of metadata["checks"]["failures"] by
    its code and values; a note checked before failures were kept (or with a code this version does not know) shows
    its English reasons as stored."""
    checks = checks or {}
    reasons = [str(reason) for reason in checks.get("reasons") or []]
    failures = checks.get("failures")
    if not isinstance(failures, list) or len(failures) != len(reasons):
        return reasons
    shown = []
    for failure, reason in zip(failures, reasons, strict=True):
        code = failure.get("code") if isinstance(failure, dict) else None
        if code not in FAILURES:
            shown.append(reason)
            continue
        values = {name: str(value) for name, value in failure.items() if name != "code"}
        if code == "artifact":
            values["name"] = _(values.get("name", ""))
        try:
            shown.append(_(FAILURES[code]) % values)
        except (KeyError, TypeError, ValueError):  # values stored by another version of the message
            shown.append(reason)
    return shown
