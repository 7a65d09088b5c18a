"""Near-duplicate synthetic notes: pure functions for the background duplicates scan (in one pass, or in two steps for
a scan in shards).

It works on word tokens (``tokens``: medsyn_site.core.text.words, lower-cased razdel words, numbers and
punctuation left out), so "20 лет" and "30 лет", or a changed comma, do not make two notes differ.
MinHash LSH over word shingles proposes candidate pairs in one streaming pass; every candidate is verified
on the exact shingle sets, so no pair below the threshold is reported. Memorisation of real notes is
generation.memorisation.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterable, Sized
from dataclasses import dataclass
from functools import cache

import numpy as np
from datasketch import MinHash, MinHashLSH

from medsyn_site.core.text import words

Progress = Callable[[int, int], None]  # (notes done, notes total)
PROGRESS_EVERY = 1000
# (false-positive, false-negative) weights for datasketch's choice of bands: a false positive costs one exact
# intersection, a false negative is a missed duplicate. With 128 permutations and threshold 0.8 this gives
# 16 bands of 8 rows: a pair at exactly 0.8 becomes a candidate with probability 0.95, at 0.85 with 0.994
# (0.40 and 0.69 with datasketch's default equal weights), a pair at 0.5 with 0.06.
LSH_WEIGHTS = (0.05, 0.95)


def tokens(text: str) -> list[str]:
    """The words near_duplicates compares: medsyn_site.core.text.words."""
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

# --- near_duplicates in two steps, for a scan in shards (review.curation.scans): each note's signature, stored by its
# shard, then every signature paired with every other at once ----------------------------------------------------

@cache
def _lsh_bands(thresholds: DuplicateThresholds) -> list[tuple[int, int]]:
    """The MinHash rows of each LSH band, as near_duplicates' MinHashLSH chooses them."""
    return MinHashLSH(threshold=thresholds.jaccard, num_perm=thresholds.num_perm, weights=LSH_WEIGHTS).hashranges


@cache
def _minhash_empty(thresholds: DuplicateThresholds) -> MinHash:
    return MinHash(num_perm=thresholds.num_perm, seed=thresholds.seed, hashfunc=_low32)


def note_signature(text: str, thresholds: DuplicateThresholds = DuplicateThresholds()  # noqa: B008 (frozen)
                   ) -> tuple[np.ndarray, np.ndarray] | None:
    """What pairing needs of a note, without its text: (a 64-bit digest of each LSH band of its MinHash, its sorted
    word-shingle hashes), uint64 arrays; None for a note without words (dedup.near_duplicates skips it too)."""
    hashes = _shingle_hashes(note_shingles(text, thresholds.shingle_words))
    if not hashes.size:
        return None
    minhash = _minhash_empty(thresholds).copy()
    minhash.update_batch(hashes)
    bands = [int.from_bytes(hashlib.blake2b(minhash.hashvalues[start:end].tobytes(), digest_size=8).digest(), "little")
             for start, end in _lsh_bands(thresholds)]
    return np.array(bands, dtype=np.uint64), hashes


def duplicates_from_signatures(
    ranks: list[int],
    bands: np.ndarray,
    shingles_of: Callable[[int], np.ndarray],
    thresholds: DuplicateThresholds = DuplicateThresholds(),  # noqa: B008 (frozen)
) -> dict[int, tuple[int, float]]:
    """near_duplicates over notes' signatures (their ranks, a row of band digests each, and shingles_of(rank)):
    the same candidates (notes sharing a band), verified exactly on their shingles, the same groups and originals (the
    lowest rank of a group) and the same exact Jaccard to the original; every note paired with every other at once,
    wherever it was read. Only the notes of a candidate pair have their shingles asked for."""
    candidates: set[tuple[int, int]] = set()
    for column in bands.T:
        order = np.argsort(column, kind="stable")
        ordered = column[order]
        starts = np.flatnonzero(np.concatenate(([True], ordered[1:] != ordered[:-1]))).tolist()
        for first, end in zip(starts, [*starts[1:], len(ordered)], strict=True):
            if end - first > 1:
                candidates.update(itertools.combinations(sorted(ranks[index] for index in order[first:end]), 2))
    hashes = {rank: shingles_of(rank) for rank in sorted({rank for pair in candidates for rank in pair})}
    parent: dict[int, int] = {}  # union-find over notes in a verified pair; a root is its group's lowest rank

    def root(rank: int) -> int:
        while (up := parent.get(rank, rank)) != rank:
            parent[rank] = parent.get(up, up)
            rank = up
        return rank

    for first, second in sorted(candidates):
        mine, theirs = root(first), root(second)
        if mine != theirs and _jaccard(hashes[first], hashes[second]) >= thresholds.jaccard:
            parent[max(mine, theirs)] = min(mine, theirs)  # a pair already in one group changes nothing: not verified
    return {rank: (root(rank), _jaccard(hashes[rank], hashes[root(rank)])) for rank in sorted(parent)}


def lsh_band_count(thresholds: DuplicateThresholds) -> int:
    """How many band digests note_signature gives a note."""
    return len(_lsh_bands(thresholds))
