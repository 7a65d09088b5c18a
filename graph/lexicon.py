"""The symptom lexicon matcher: which symptoms of a lexicon a text mentions.

A symptom is mentioned when all content lemmas of its name (medsyn_site.core.text.content_lemmas) occur inside one
sentence of the text (razdel): the rule graph.importers.rumedbench_payload draws the graph's `rumedbench:lexicon`
edges by, so an instruction set finds in a note the symptoms the graph would have linked to it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from functools import lru_cache

from razdel import sentenize

from medsyn_site.core.text import content_lemmas

# A note word is lemmatised only if it starts like a lexicon lemma (content_lemmas prefixes): it halves the time.
LEXICON_PREFIX = 3


class SymptomLexicon:
    """Symptom keys (any hashable name) with their content lemmas, indexed for matching many texts.

    Each symptom is looked up only in sentences holding its anchor lemma (the first of its lemmas, sorted); a symptom
    whose name has no content lemma is never mentioned. Matching costs about 1 ms a note (razdel's tokeniser, mostly):
    the answers are kept per text (up to CACHE_TEXTS), so a lexicon kept by the caller answers again at once."""

    CACHE_TEXTS = 200_000

    def __init__(self, names: Mapping[str, str]) -> None:
        self._answers: dict[str, tuple[str, ...]] = {}
        self.lemmas = {key: frozenset(content_lemmas(name)) for key, name in names.items()}
        self.prefixes = frozenset(lemma[:LEXICON_PREFIX] for needed in self.lemmas.values() for lemma in needed)
        self._by_anchor: dict[str, list[tuple[str, frozenset[str]]]] = defaultdict(list)
        for key, needed in self.lemmas.items():
            if needed:
                self._by_anchor[min(needed)].append((key, needed))

    def mentioned(self, text: str) -> list[str]:
        """The keys of the symptoms the text mentions, in the order of the sentence that first mentions each (then by
        key)."""
        if (answer := self._answers.get(text)) is None:
            if len(self._answers) >= self.CACHE_TEXTS:
                self._answers.clear()
            answer = self._answers[text] = tuple(self._match(text))
        return list(answer)

    def _match(self, text: str) -> list[str]:
        found: dict[str, None] = {}
        for sentence in sentenize(text):
            present = set(content_lemmas(sentence.text, prefixes=self.prefixes, prefix_len=LEXICON_PREFIX))
            hits = [key for anchor in present & self._by_anchor.keys() for key, needed in self._by_anchor[anchor]
                    if needed <= present]
            found.update(dict.fromkeys(sorted(hits)))
        return list(found)


@lru_cache(maxsize=4)
def symptom_lexicon(names: frozenset[str]) -> SymptomLexicon:
    """The lexicon of these symptom names, keyed by the names; kept by the process, so the next preview or build over
    the same names (the same graph and split) finds the notes already matched."""
    return SymptomLexicon({name: name for name in sorted(names)})
