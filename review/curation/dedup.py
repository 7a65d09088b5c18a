"""Near-duplicate synthetic notes and memorisation of real notes: pure functions for background scans.

Both work on word tokens (``tokens``: lower-cased razdel words, numbers and punctuation left out), so
"20 лет" and "30 лет", or a changed comma, do not make two notes differ.

1. ``near_duplicates``: MinHash LSH over word shingles proposes candidate pairs in one streaming pass;
   every candidate is verified on the exact shingle sets, so no pair below the threshold is reported.
2. ``MemorisationIndex``: an inverted index of hashed word n-grams ("anchors") of the real notes finds the
   real notes a synthetic note borrows from; the longest shared word run and the near-copy score are then
   computed exactly on the word sequences of the few best candidates.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass
from difflib import SequenceMatcher

import numpy as np
from datasketch import MinHash, MinHashLSH

from generation.checks import words

Progress = Callable[[int, int], None]  # (notes done, notes total)
PROGRESS_EVERY = 1000
# (false-positive, false-negative) weights for datasketch's choice of bands: a false positive costs one exact
# intersection, a false negative is a missed duplicate. With 128 permutations and threshold 0.8 this gives
# 16 bands of 8 rows: a pair at exactly 0.8 becomes a candidate with probability 0.95, at 0.85 with 0.994
# (0.40 and 0.69 with datasketch's default equal weights), a pair at 0.5 with 0.06.
LSH_WEIGHTS = (0.05, 0.95)
UNKNOWN_WORD = -1  # id of a word no real note contains: matches nothing in the memorisation index


def tokens(text: str) -> list[str]:
    """Lower-cased razdel word tokens, numbers and punctuation left out (shared by both checks)."""
    return words(text)


# --- near duplicates among synthetic notes ------------------------------------------------------------------


@dataclass(frozen=True)
class DuplicateThresholds:
    """When two synthetic notes count as near duplicates.

    jaccard 0.8 on word 3-shingles: one substituted word breaks up to 3 shingles, so k scattered substitutions
    in an n-word note give about (n - 2 - 3k) / (n - 2 + 3k); 0.8 allows about one substitution per 27 words
    (two in a 60-word note) or a few reordered sentences (only the shingles across a boundary change). Two
    independently generated notes on the same complaint share stock phrases ("жалобы на боли в", "в течение")
    but stay far below 0.8. 3-word shingles keep word order (bags of words would match reorderings of
    different notes) while one changed word does not dominate as it does with longer shingles.
    num_perm 128: estimate error about 0.035 at 0.8, enough for candidate generation since pairs are verified
    exactly. seed 1: fixed, so a rerun proposes the same candidates.
    """

    jaccard: float = 0.8
    shingle_words: int = 3
    num_perm: int = 128
    seed: int = 1


def note_shingles(text: str, size: int) -> set[bytes]:
    """Word ``size``-grams of the note (UTF-8, words joined by a space); a shorter note is one shingle."""
    words_ = tokens(text)
    if not words_:
        return set()
    if len(words_) < size:
        return {" ".join(words_).encode()}
    return {" ".join(words_[i:i + size]).encode() for i in range(len(words_) - size + 1)}


def _shingle_hashes(shingles: set[bytes]) -> np.ndarray:
    """Sorted 64-bit hashes of the shingles: 8 bytes a shingle instead of ~100 for a set of bytes.

    Jaccard on these equals Jaccard on the shingles unless two distinct shingles collide in 64 bits
    (probability about 1e-10 for 100k notes of 100 shingles).
    """
    digests = [int.from_bytes(hashlib.blake2b(shingle, digest_size=8).digest(), "little") for shingle in shingles]
    return np.sort(np.array(digests, dtype=np.uint64))


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    shared = np.intersect1d(a, b, assume_unique=True).size
    return shared / (a.size + b.size - shared)


def _low32(value: np.uint64) -> int:
    """MinHash input: the shingle's 64-bit hash cut to the 32 bits of datasketch's affine32 scheme."""
    return int(value) & 0xFFFFFFFF


def near_duplicates(
    notes: Iterable[tuple[int, str]],
    *,
    thresholds: DuplicateThresholds = DuplicateThresholds(),  # noqa: B008 (frozen, so a shared default is safe)
    progress: Progress | None = None,
    total: int | None = None,
) -> dict[int, tuple[int, float]]:
    """Map each near-duplicate note to ``(original_id, jaccard)``; the original is the lowest id of its group.

    One pass over (id, text) pairs in any order (ids unique): each note's MinHash queries the LSH of the notes
    seen so far, then is inserted. Candidates are verified exactly on word-shingle sets (64-bit hashes of the
    shingles, not the MinHash estimate), so every pair joined has Jaccard >= thresholds.jaccard; the LSH may
    miss a pair near the threshold (see LSH_WEIGHTS). Groups are the connected components of verified pairs;
    the lowest id of a group is its original and is not in the result. ``jaccard`` is the exact Jaccard
    between the note and its original: in a chain A~B~C it may be below the threshold for C and A.
    Notes without words are skipped. Memory, kept to the end since any later note may need it: about 5 KB a
    note in datasketch's LSH (16 bands, a set per bucket) plus 8 bytes a shingle for the verification.
    ``progress(done, total)`` is called every PROGRESS_EVERY notes and at the end with (done, done); total
    defaults to len(notes) when notes is sized, else the count so far.
    """
    if total is None and isinstance(notes, Sized):
        total = len(notes)
    lsh = MinHashLSH(threshold=thresholds.jaccard, num_perm=thresholds.num_perm, weights=LSH_WEIGHTS)
    empty = MinHash(num_perm=thresholds.num_perm, seed=thresholds.seed, hashfunc=_low32)
    hashes_by_id: dict[int, np.ndarray] = {}
    parent: dict[int, int] = {}  # union-find over notes in a verified pair; a root is its group's lowest id

    def root(note_id: int) -> int:
        while (up := parent.get(note_id, note_id)) != note_id:
            parent[note_id] = parent.get(up, up)  # path halving
            note_id = up
        return note_id

    done = 0
    for note_id, text in notes:
        hashes = _shingle_hashes(note_shingles(text, thresholds.shingle_words))
        if hashes.size:
            minhash = empty.copy()
            minhash.update_batch(hashes)
            for other in lsh.query(minhash):
                if _jaccard(hashes, hashes_by_id[other]) >= thresholds.jaccard:
                    mine, theirs = root(note_id), root(other)
                    if mine != theirs:
                        parent[max(mine, theirs)] = min(mine, theirs)
            lsh.insert(note_id, minhash)
            hashes_by_id[note_id] = hashes
        done += 1
        if progress is not None and done % PROGRESS_EVERY == 0:
            progress(done, max(total or 0, done))
    if progress is not None:
        progress(done, done)
    duplicates = {}
    for note_id in sorted(parent):  # the notes with a parent: every note of a group but its lowest id
        original = root(note_id)
        duplicates[note_id] = (original, _jaccard(hashes_by_id[note_id], hashes_by_id[original]))
    return duplicates


# --- memorisation of real notes -----------------------------------------------------------------------------


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
            ids = [self._vocabulary.setdefault(word, len(self._vocabulary)) for word in tokens(text)]
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
        ids = [self._vocabulary.get(word, UNKNOWN_WORD) for word in tokens(text)]
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
