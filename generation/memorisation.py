"""Memorisation of real notes: which real note a synthetic note copies, by one definition for every caller.

A synthetic note memorises a real note when they share a run of at least 12 words, or when at least half of the
synthetic note's word 5-grams occur in that one real note (MemorisationThresholds). The generation checks and
the curation scan both ask MemorisationIndex, built over all real notes; words are medsyn_site.core.text.words
(lower-cased razdel words, numbers and punctuation left out), so "20 лет" and "30 лет" do not differ.

An inverted index of hashed word n-grams ("anchors") of the real notes finds the real notes a synthetic note
borrows from; the longest shared word run and the near-copy score are then computed exactly on the word
sequences of the few best candidates.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from difflib import SequenceMatcher

import numpy as np

from medsyn_site.core.text import words

UNKNOWN_WORD = -1  # id of a word no real note contains: matches nothing in the index
INDEX_CHUNK = 2000


@dataclass(frozen=True)
class MemorisationThresholds:
    """When a synthetic note counts as memorised from a real note, and how the index is built.

    longest_ngram_words 12: checking RuMedTop3's 848 dev notes against its 4690 train notes, the longest runs
    shared by different patients' notes are stock phrases whose count falls steadily from 5 to 11 words
    (138, 89, 55, 34, 27, 16, 7 notes), e.g. "боли в поясничном отделе позвоночника в покое усиливаются при
    движении" (10 words); from 12 words on it stops falling (7 to 12 notes a length): repeat visits and a
    doctor's templates, i.e. text a generator should not reproduce. RuMedTop3 notes have a median of 16 words,
    so a whole copied real note is mostly caught; shorter ones only through near_copy.
    near_copy 0.5: at least half of the synthetic note's distinct word 5-grams occur in one real note, i.e.
    half the note is stitched from 5-word runs of it; this catches lightly edited copies whose edits cut every
    run below 12 words (one edit breaks at most 5 of the 5-grams).
    anchor_words 5: n-gram size of the index; shorter anchors ("жалобы на боли в") are stock phrases that
    make every note a candidate, longer ones miss copies edited every few words. It is also the n-gram size
    of near_copy.
    anchor_max_notes 200: an anchor found in more real notes is boilerplate (a template line, a stock
    phrase); it is dropped from the index, so it neither floods the candidates nor costs memory. A note
    sharing nothing but such anchors with the real notes is reported with no real note.
    candidates 5: real notes (most shared anchors first) whose word sequences are compared exactly.
    """

    longest_ngram_words: int = 12
    near_copy: float = 0.5
    anchor_words: int = 5
    anchor_max_notes: int = 200
    candidates: int = 5


@dataclass(frozen=True)
class MemorisationResult:
    """The real note a synthetic note overlaps most with.

    real_note_id is None (and the scores 0) when the note shares no indexed anchor with any real note.
    longest_ngram: words in the longest run shared with that real note (exact, on word tokens).
    near_copy: share of the synthetic note's distinct word anchor_words-grams found in that real note (exact);
    a note shorter than anchor_words words scores 1.0 when its words equal a real note's, else 0.
    """

    real_note_id: int | None
    longest_ngram: int
    near_copy: float

    def flagged(self, thresholds: MemorisationThresholds) -> bool:
        """Either a long verbatim run or a near copy (see MemorisationThresholds)."""
        return self.longest_ngram >= thresholds.longest_ngram_words or self.near_copy >= thresholds.near_copy


def _ngrams(ids: list[int], size: int) -> set[tuple[int, ...]]:
    """Distinct word-id ``size``-grams; a note shorter than size is its one whole sequence (none if empty)."""
    if len(ids) < size:
        return {tuple(ids)} if ids else set()
    return {tuple(ids[i:i + size]) for i in range(len(ids) - size + 1)}


class MemorisationIndex:
    """Inverted index of the real notes' word anchors, to check synthetic notes against all real notes.

    Memory: each real note is kept as an int32 array of word ids (4 bytes a word, one shared vocabulary);
    the index maps the Python hash of an anchor (a tuple of word ids) to one note id, or a tuple of ids when
    the anchor occurs in several notes. Hash collisions can only add a candidate: scores are exact.
    Real notes shorter than anchor_words words are indexed by their whole word sequence.
    """

    def __init__(
        self,
        real_notes: Iterable[tuple[int, str]],
        *,
        thresholds: MemorisationThresholds = MemorisationThresholds(),  # noqa: B008 (frozen)
    ) -> None:
        self.thresholds = thresholds
        self._vocabulary: dict[str, int] = {}
        self._notes: dict[int, np.ndarray] = {}
        # anchor hash -> note id, or the ids in a list while building, a tuple (smaller) once built
        self._index: dict[int, int | list[int] | tuple[int, ...]] = {}
        boilerplate: set[int] = set()
        for note_id, text in real_notes:
            ids = [self._vocabulary.setdefault(word, len(self._vocabulary)) for word in words(text)]
            if not ids:
                continue
            self._notes[note_id] = np.array(ids, dtype=np.int32)
            for key in {hash(anchor) for anchor in _ngrams(ids, thresholds.anchor_words)}:
                if key in boilerplate:
                    continue
                found = self._index.get(key)
                if found is None:
                    self._index[key] = note_id
                elif isinstance(found, int):
                    self._index[key] = [found, note_id]
                elif len(found) < thresholds.anchor_max_notes:
                    found.append(note_id)
                else:
                    del self._index[key]
                    boilerplate.add(key)
        for key, found in self._index.items():
            if isinstance(found, list):
                self._index[key] = tuple(found)
        self.boilerplate_anchors = len(boilerplate)

    def __len__(self) -> int:
        return len(self._notes)

    def check(self, text: str) -> MemorisationResult:
        """The riskiest real note for this synthetic note: longest shared run first, then near_copy.

        Candidates are the real notes sharing the most indexed anchors; only the top thresholds.candidates
        are compared exactly, so a real note sharing a long run but fewer anchors than that many others is
        missed.
        """
        size = self.thresholds.anchor_words
        ids = [self._vocabulary.get(word, UNKNOWN_WORD) for word in words(text)]
        anchors = _ngrams(ids, size)
        shared: Counter[int] = Counter()
        for anchor in anchors:
            found = self._index.get(hash(anchor))
            if isinstance(found, int):
                shared[found] += 1
            elif found is not None:
                shared.update(found)
        best = MemorisationResult(real_note_id=None, longest_ngram=0, near_copy=0.0)
        ranked = sorted(shared.items(), key=lambda item: (-item[1], item[0]))[:self.thresholds.candidates]
        for real_id, _count in ranked:
            real = self._notes[real_id].tolist()
            if len(ids) < size:
                if real != ids:  # a hash collision
                    continue
                result = MemorisationResult(real_id, len(ids), 1.0)
            else:
                matcher = SequenceMatcher(None, ids, real, autojunk=False)
                longest = matcher.find_longest_match(0, len(ids), 0, len(real)).size
                result = MemorisationResult(real_id, longest, len(anchors & _ngrams(real, size)) / len(anchors))
            if best.real_note_id is None or (result.longest_ngram, result.near_copy) > (best.longest_ngram,
                                                                                       best.near_copy):
                best = result
        return best


def memorisation_index_load() -> MemorisationIndex:
    """The index over every real note in the database, read once per job or edit."""
    from .models import Note

    return MemorisationIndex(Note.objects.filter(origin=Note.Origin.REAL).values_list("id", "text")
                             .iterator(chunk_size=INDEX_CHUNK))


_cached: dict[tuple[int, int], MemorisationIndex] = {}


def memorisation_index_cached() -> MemorisationIndex:
    """memorisation_index_load, kept by the process while the real notes stay the same (their count and newest id:
    real notes are imported or deleted, never edited), so that the chunks of a job a worker runs one after another
    read the corpus once, not once per chunk."""
    from django.db.models import Count, Max

    from .models import Note

    stamp = Note.objects.filter(origin=Note.Origin.REAL).aggregate(count=Count("id"), newest=Max("id"))
    key = (stamp["count"], stamp["newest"] or 0)
    if key not in _cached:
        _cached.clear()
        _cached[key] = memorisation_index_load()
    return _cached[key]
