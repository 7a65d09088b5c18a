"""Russian (and English) text tools every app shares: word tokens, content lemmas, normalised text and its hash.

One tokeniser (razdel words: letters, hyphenated words kept whole; numbers and punctuation left out) and one
lemmatiser (pymorphy3; ё read as е; function words dropped) serve the graph's symptom lexicon, the note checks
and the curation scans, so "a symptom is mentioned" means the same everywhere.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from functools import lru_cache

from razdel import tokenize

WORD = re.compile(r"^[^\W\d_]+(?:-[^\W\d_]+)*$")
# Parts of speech that carry no content: prepositions, conjunctions, particles, interjections, pronouns,
# predicatives ("нельзя", "можно").
FUNCTION_POS = frozenset({"PREP", "CONJ", "PRCL", "INTJ", "NPRO", "PRED"})


def words(text: str) -> list[str]:
    """Lower-cased word tokens (razdel), ё read as е; numbers and punctuation left out, and a dash left hanging
    on a word ("одышку- слабость") taken off it."""
    found = []
    for token in tokenize(text):
        word = token.text.strip("-")
        if WORD.match(word):
            found.append(word.lower().replace("ё", "е"))
    return found


@lru_cache(maxsize=1)
def _morph():
    import pymorphy3

    return pymorphy3.MorphAnalyzer(lang="ru")


@lru_cache(maxsize=200_000)
def lemma(word: str) -> str | None:
    """The normal form of a lower-cased word, or None for a function word (FUNCTION_POS) or a one-letter lemma."""
    parse = _morph().parse(word)[0]
    if parse.tag.POS in FUNCTION_POS:
        return None
    normal = parse.normal_form.replace("ё", "е")
    return normal if len(normal) > 1 else None


def content_lemmas(text: str, *, prefixes: frozenset[str] | None = None, prefix_len: int = 3,
                   short: int = 4) -> list[str]:
    """Lemmas of the content words of text, in order (repeats kept).

    With prefixes, only words starting like one of them (their first prefix_len letters) are analysed and the
    rest kept as they are: Russian inflects endings, so a word that could lemmatise to a lexicon lemma shares
    its first letters (words of up to `short` letters, with fleeting vowels such as сна -> сон, are always
    analysed). This halves the time spent matching a lexicon against many notes.
    """
    found = []
    for word in words(text):
        if prefixes is not None and len(word) > short and word[:prefix_len] not in prefixes:
            found.append(word)
        elif (normal := lemma(word)) is not None:
            found.append(normal)
    return found


def text_normalise(text: str) -> str:
    """NFC, whitespace runs collapsed to one space, ends stripped: what a content hash sees of a text."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def content_hash(*parts: str) -> str:
    """sha256 over the parts (each normalised), joined by a unit separator."""
    return hashlib.sha256("\x1f".join(text_normalise(part) for part in parts).encode("utf-8")).hexdigest()
