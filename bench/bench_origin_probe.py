"""Does the rater normaliser (review.assessment.blinding.rater_text) leave anything but content to tell origin by?

    .venv/bin/python bench/bench_origin_probe.py [--pairs 150] [--seed 7]

No services needed. A pool is built from RuMedTop3 dev notes (real, as the corpus wrote them, de-identification
markers and all) and "synthetic" notes that are other RuMedTop3 dev notes of the same code dressed in what a
generator leaves (seeded, one or more per note): a chat role or an instruction header, special tokens, Markdown
headings, bold and lists, typographic dashes and quotes, zero-width characters and soft hyphens, a concrete date
where the corpus writes *ДАТА*, a trailing comma turned ",.". So the two origins differ in form only, as far as
possible, and by construction say the same kind of thing.

Prints the origin classifier's cross-validated accuracy (review.assessment.origin_probe: char 1-3-gram TF-IDF +
logistic regression, 5 folds) on the raw texts, on what raters see, and on the content alone, and how long one
probe of the pool takes. Target: normalised no better than content + origin_probe.MARGIN.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from review.assessment.blinding import rater_text  # noqa: E402
from review.assessment.origin_probe import MARGIN, origin_probe  # noqa: E402

DEV = ROOT / "data" / "rumedbench" / "RuMedTop3" / "dev_v1.jsonl"


def _dressed(text: str, rng: random.Random) -> str:
    """text with a seeded handful of generator fingerprints."""
    text = text.replace("*ДАТА*", rng.choice(["12.03.2021", "XX.XX.XXXX", "01.02.2020"]))
    moves = [
        lambda t: "assistant\n" + t,
        lambda t: "### Response:\n" + t,
        lambda t: "<start_of_turn>model\n" + t + "<end_of_turn>",
        lambda t: t + "<eos><pad><pad>",
        lambda t: "**Жалобы:** " + t,
        lambda t: "# Анамнез\n" + t,
        lambda t: "\n".join(f"{n}. {part.strip()}" for n, part in enumerate(t.split(","), start=1) if part.strip()),
        lambda t: t.replace(" - ", " — ").replace("-", "–"),
        lambda t: t.replace("е", "е\u00ad", 2).replace(" ", " \u200b", 2),
        lambda t: "«" + t + "»",
        lambda t: t.rstrip(".") + ",",
        lambda t: t.replace(",", " ,"),
    ]
    for move in rng.sample(moves, rng.randint(1, 3)):
        text = move(text)
    return text


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=150)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    by_code: dict[str, list[str]] = defaultdict(list)
    for line in DEV.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        by_code[row["code"]].append(row["symptoms"])
    raw, labels = [], []
    codes = [code for code, notes in sorted(by_code.items()) if len(notes) >= 2]
    while len(labels) < 2 * args.pairs:
        real, other = rng.sample(by_code[rng.choice(codes)], 2)
        raw += [real, _dressed(other, rng)]
        labels += [False, True]
    normalised = [rater_text(text) for text in raw]
    changed = {origin: sum(r != n for r, n, s in zip(raw, normalised, labels, strict=True) if s == flag)
               for origin, flag in (("real", False), ("synthetic", True))}
    origin_probe(raw[:40], normalised[:40], labels[:40], seed=args.seed)  # scikit-learn imported before timing
    started = time.perf_counter()
    probe = origin_probe(raw, normalised, labels, seed=args.seed)
    seconds = time.perf_counter() - started
    print(f"pool: {args.pairs} real + {args.pairs} dressed RuMedTop3 dev notes; normaliser changed "
          f"{changed['real']} real and {changed['synthetic']} synthetic notes")
    print(f"origin classifier accuracy (5-fold, chance 0.5): raw {probe['raw']:.3f}, "
          f"normalised {probe['normalised']:.3f}, content only {probe['content']:.3f}")
    verdict = "met" if probe["normalised"] <= probe["content"] + MARGIN else "NOT met"
    print(f"target normalised <= content + {MARGIN}: {verdict}; one probe of the pool took {seconds:.2f} s")
    return 0 if verdict == "met" else 1


if __name__ == "__main__":
    sys.exit(main())
