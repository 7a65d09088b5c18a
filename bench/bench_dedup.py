"""Near duplicates and memorisation at scale: 40k synthetic-like notes against 5k real notes.

Real notes are RuMedTop3 complaints (train + dev). Synthetic-like notes are random word sequences (20-120 words,
in sentences) drawn by frequency from the 3000 commonest words of RuMedTop3 and RuMedSymptomRec, plus injected:
- near duplicates: a copy of another synthetic note with one word in 12 to 60 replaced (Jaccard 0.6 to 1);
- embedded copies: a whole real note (12 words or more) inside random text;
- edited copies: a real note (20 words or more) with one word in ten replaced.
Then times near_duplicates (notes fed in shuffled id order) and MemorisationIndex build + check of every
synthetic note, and counts found versus injected. No services, no database: review.curation.dedup and
generation.memorisation are pure Python.

Run: .venv/bin/python bench/bench_dedup.py [--notes 40000] [--real 5000] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from generation.memorisation import MemorisationIndex, MemorisationResult, MemorisationThresholds  # noqa: E402
from review.curation.dedup import DuplicateThresholds, near_duplicates, note_shingles, tokens  # noqa: E402

DATA = ROOT / "data" / "rumedbench"
VOCABULARY_SIZE = 3000


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def rumedbench_texts() -> tuple[list[str], list[str]]:
    """RuMedTop3 texts (the real notes) and RuMedSymptomRec texts (vocabulary only)."""
    def read(*paths: str) -> list[str]:
        return [json.loads(line)["symptoms"] for path in paths for line in (DATA / path).open(encoding="utf-8")]

    return (read("RuMedTop3/train_v1.jsonl", "RuMedTop3/dev_v1.jsonl"),
            read("RuMedSymptomRec/train_v1.jsonl", "RuMedSymptomRec/dev_v1.jsonl", "RuMedSymptomRec/test_v1.jsonl"))


class Writer:
    """Random note-like text from the commonest real words, drawn by frequency."""

    def __init__(self, texts: list[str], rng: random.Random) -> None:
        counts = Counter(word for text in texts for word in tokens(text)).most_common(VOCABULARY_SIZE)
        self.words = [word for word, _ in counts]
        self.weights = [count for _, count in counts]
        self.rng = rng

    def draw(self, count: int) -> list[str]:
        return self.rng.choices(self.words, self.weights, k=count)

    def text(self, words: list[str]) -> str:
        """Sentences of 6 to 14 words, capitalised, a comma now and then."""
        sentences, start = [], 0
        while start < len(words):
            end = start + self.rng.randint(6, 14)
            sentence = [w + ("," if self.rng.random() < 0.1 else "") for w in words[start:end]]
            sentences.append(" ".join(sentence).rstrip(",").capitalize() + ".")
            start = end
        return " ".join(sentences)

    def edit(self, words: list[str], every: int) -> list[str]:
        """One word in ``every`` replaced, at a random offset in each stretch."""
        edited = list(words)
        for start in range(0, len(edited) - every + 1, every):
            position = start + self.rng.randrange(every)
            edited[position] = self.rng.choice([w for w in self.draw(3) if w != edited[position]] or ["иначе"])
        return edited


def notes_make(n_notes: int, n_real: int, seed: int):
    rng = random.Random(seed)
    top3, symptom_rec = rumedbench_texts()
    writer = Writer(top3 + symptom_rec, rng)
    real = top3[:n_real]
    real_words = [tokens(text) for text in real]
    n_duplicates, n_embedded, n_edited = n_notes // 40, n_notes // 80, n_notes // 80
    n_plain = n_notes - n_duplicates - n_embedded - n_edited
    plain = [writer.draw(rng.randint(20, 120)) for _ in range(n_plain)]
    duplicate_pairs = []  # (base index, copy index) into the synthetic list
    synthetic = [writer.text(words) for words in plain]
    for _ in range(n_duplicates):
        base = rng.randrange(n_plain)
        duplicate_pairs.append((base, len(synthetic)))
        synthetic.append(writer.text(writer.edit(plain[base], rng.randint(12, 60))))
    long_enough = [i for i, words in enumerate(real_words) if len(words) >= 12]
    embedded = {}
    for _ in range(n_embedded):
        source = rng.choice(long_enough)
        embedded[len(synthetic)] = source
        synthetic.append(f"{writer.text(writer.draw(rng.randint(5, 40)))} {real[source]} "
                         f"{writer.text(writer.draw(rng.randint(5, 40)))}")
    editable = [i for i, words in enumerate(real_words) if len(words) >= 20]
    edited = {}
    for _ in range(n_edited):
        source = rng.choice(editable)
        edited[len(synthetic)] = source
        synthetic.append(writer.text(writer.edit(real_words[source], 10)))
    ids = list(range(len(synthetic)))
    rng.shuffle(ids)  # note ids in a random order: index i gets id ids[i]
    return real, synthetic, ids, duplicate_pairs, embedded, edited


def bench_near_duplicates(synthetic: list[str], ids: list[int], pairs: list[tuple[int, int]]) -> None:
    thresholds = DuplicateThresholds()
    calls = []
    before = peak_rss_mb()
    started = time.perf_counter()
    found = near_duplicates(zip(ids, synthetic, strict=True), thresholds=thresholds, total=len(ids),
                            progress=lambda done, total: calls.append((done, total)))
    elapsed = time.perf_counter() - started
    assert calls[-1] == (len(ids), len(ids)), calls[-1]
    print(f"near_duplicates: {len(synthetic)} notes in {elapsed:.1f} s ({len(synthetic) / elapsed:.0f} notes/s), "
          f"peak RSS {peak_rss_mb():.0f} MB (+{peak_rss_mb() - before:.0f} MB)")
    scores = [jaccard(synthetic[base], synthetic[copy], thresholds.shingle_words) for base, copy in pairs]
    above = [(ids[base], ids[copy]) for (base, copy), score in zip(pairs, scores, strict=True)
             if score >= thresholds.jaccard]
    expected = groups(above)
    hits = sum(1 for dup, original in expected.items() if found.get(dup, (None,))[0] == original)
    print(f"near_duplicates: {len(pairs)} copies injected (Jaccard {min(scores):.2f} to {max(scores):.2f}), "
          f"{len(above)} with exact Jaccard >= {thresholds.jaccard} ({len(expected)} notes to report); {hits} reported "
          f"with the right original ({100 * hits / max(len(expected), 1):.1f}%), {len(found) - hits} other note(s)")


def groups(pairs: list[tuple[int, int]]) -> dict[int, int]:
    """Expected answer: every note of a connected group but the lowest id -> the lowest id."""
    parent: dict[int, int] = {}

    def root(note_id: int) -> int:
        while note_id in parent:
            note_id = parent[note_id]
        return note_id

    for a, b in pairs:
        first, second = root(a), root(b)
        if first != second:
            parent[max(first, second)] = min(first, second)
    return {note_id: root(note_id) for note_id in parent}


def jaccard(a: str, b: str, size: int) -> float:
    first, second = note_shingles(a, size), note_shingles(b, size)
    return len(first & second) / len(first | second)


def bench_memorisation(real: list[str], synthetic: list[str], embedded: dict[int, int], edited: dict[int, int]):
    thresholds = MemorisationThresholds()
    before = peak_rss_mb()
    started = time.perf_counter()
    index = MemorisationIndex(enumerate(real), thresholds=thresholds)
    built = time.perf_counter() - started
    print(f"memorisation: index of {len(index)} real notes built in {built:.2f} s "
          f"({index.boilerplate_anchors} boilerplate anchors dropped), peak RSS +{peak_rss_mb() - before:.0f} MB")
    started = time.perf_counter()
    results = [index.check(text) for text in synthetic]
    elapsed = time.perf_counter() - started
    print(f"memorisation: {len(synthetic)} notes checked in {elapsed:.1f} s ({len(synthetic) / elapsed:.0f} notes/s)")
    spaced = [f" {' '.join(tokens(text))} " for text in real]

    def right(result: MemorisationResult, source: int) -> bool:
        """The source note, or one holding all its words in a run (RuMedTop3 repeats notes in later visits)."""
        return result.real_note_id is not None and spaced[source] in spaced[result.real_note_id]

    for name, injected in (("embedded copies", embedded), ("edited copies", edited)):
        hits = sum(1 for i, source in injected.items() if results[i].flagged(thresholds) and right(results[i], source))
        by_run = sum(1 for i in injected if results[i].longest_ngram >= thresholds.longest_ngram_words)
        print(f"memorisation: {name}: {len(injected)} injected, {hits} flagged with the right real note "
              f"({by_run} by the longest run)")
    others = [r for i, r in enumerate(results) if i not in embedded and i not in edited]
    print(f"memorisation: other notes: {sum(r.flagged(thresholds) for r in others)} of {len(others)} flagged, "
          f"{sum(r.real_note_id is not None for r in others)} share an anchor with a real note")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notes", type=int, default=40_000)
    parser.add_argument("--real", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    real, synthetic, ids, pairs, embedded, edited = notes_make(args.notes, args.real, args.seed)
    words = sum(len(text.split()) for text in synthetic)
    print(f"data: {len(real)} real notes, {len(synthetic)} synthetic ({words / len(synthetic):.0f} words on average) "
          f"made in {time.perf_counter() - started:.1f} s, peak RSS {peak_rss_mb():.0f} MB")
    sample = synthetic[:2000]
    started = time.perf_counter()
    for text in sample:
        tokens(text)
    print(f"tokens() alone (razdel): {len(sample) / (time.perf_counter() - started):.0f} notes/s")
    bench_near_duplicates(synthetic, ids, pairs)
    bench_memorisation(real, synthetic, embedded, edited)


if __name__ == "__main__":
    main()
