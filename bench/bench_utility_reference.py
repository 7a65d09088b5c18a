"""Reference check of the utility evaluation: the real-only cell on RuMedTop3 train -> dev, for each classifier.

Runs the product's engine (review.utility.evaluation.utility_evaluate on the two files, no synthetic notes, one
real-only cell) and prints accuracy / Hit@3 / Hit@5 / macro-F1 with their 95 % bootstrap intervals and the time.
Targets: close to the reference measured with TF-IDF (char_wb 3-8) + LogisticRegression(C=10, max_iter=2000) on dev,
46.5 % / 71.1 % (RuMedBench's published test figures: 49.76 / 72.75). --reference-solver also runs tfidf-lr with
scikit-learn's default lbfgs solver, the exact configuration of that measurement (about ten minutes on two cores).

With --synthetic N it also times the full paper grid (13 cells x --seeds seeds) with N synthetic-like notes: each
glues the first half of one RuMedTop3 train note to the second half of another of the same code (label-informative,
never an evaluation note). No services and no database: the notes come from the files.

Run: .venv/bin/python bench/bench_utility_reference.py [--classifiers tfidf-lr,tfidf-svm] [--reference-solver]
     [--synthetic 5000 --seeds 3 --jobs 2]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medsyn_site.settings.test")

import django  # noqa: E402

django.setup()  # the engine imports model classes; nothing here touches the database

from review.utility import classifiers  # noqa: E402
from review.utility.datasets import LabelledNote, NoteSet, evaluation_set_read  # noqa: E402
from review.utility.evaluation import REAL_ONLY, UtilityPlan, utility_evaluate, utility_table  # noqa: E402

DATA = ROOT / "data" / "rumedbench" / "RuMedTop3"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synthetic_like(train: NoteSet, count: int, seed: int) -> NoteSet:
    """count notes, each the first half of one train note and the second half of another of the same code."""
    rng = random.Random(seed)
    by_code: dict[str, list[str]] = {}
    for note in train.notes:
        by_code.setdefault(note.code, []).append(note.text)
    codes = sorted(by_code)
    notes = []
    for i in range(count):
        texts = by_code[rng.choice(codes)]
        first, second = rng.choice(texts).split(), rng.choice(texts).split()
        text = " ".join(first[:len(first) // 2] + second[len(second) // 2:] + [f"(вариант {i})"])
        notes.append(LabelledNote(key=f"synthetic:{i}", text=text, code=next(c for c in codes if by_code[c] is texts)))
    return NoteSet(name="synthetic-like", notes=tuple(notes), source={"kind": "bench", "seed": seed})


def reference_run(name: str, train: NoteSet, dev: NoteSet, bootstrap: int) -> None:
    plan = UtilityPlan(classifier=name, grid="quick", seeds=(0,), bootstrap=bootstrap)
    started = time.perf_counter()
    result = utility_evaluate(real=train, evaluation=dev, plan=plan)
    elapsed = time.perf_counter() - started
    metrics = result.cell(REAL_ONLY).metrics["all"]
    shown = " / ".join(f"{label} {100 * metrics[key]['value']:.2f} [{100 * metrics[key]['low']:.1f}, "
                       f"{100 * metrics[key]['high']:.1f}]"
                       for key, label in (("accuracy", "acc"), ("hit3", "Hit@3"), ("hit5", "Hit@5"),
                                          ("macro_f1", "macro-F1")))
    timings = result.timings
    print(f"{name}: {shown}")
    print(f"  {elapsed:.1f} s in all: overlap check {timings['overlap_s']:.1f} s, counting n-grams "
          f"{timings['features_s']:.1f} s, fit + score {timings['fits_s']:.1f} s, metrics {timings['metrics_s']:.1f} s;"
          f" peak RSS {peak_rss_mb():.0f} MB", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--classifiers", default=",".join(classifiers.CLASSIFIERS))
    parser.add_argument("--reference-solver", action="store_true",
                        help="also run tfidf-lr with lbfgs (scikit-learn's default), as STACK.md measured it")
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--synthetic", type=int, default=0, help="also time the paper grid with this many notes")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2, help="processes fitting the grid's cells")
    args = parser.parse_args()
    train = evaluation_set_read(DATA / "train_v1.jsonl")
    dev = evaluation_set_read(DATA / "dev_v1.jsonl")
    print(f"RuMedTop3 train {len(train)} notes -> dev {len(dev)} notes; reference (dev, STACK.md) 46.5 / 71.1, "
          f"published (test) 49.76 / 72.75")
    names = [name for name in args.classifiers.split(",") if name]
    for name in names:
        reference_run(name, train, dev, args.bootstrap)
    if args.reference_solver:
        reference = classifiers.CLASSIFIERS["tfidf-lr"].with_params(**classifiers.REFERENCE_SOLVER)
        classifiers.CLASSIFIERS["tfidf-lr-lbfgs"] = replace(reference, name="tfidf-lr-lbfgs",
                                                            description="tfidf-lr with lbfgs")
        reference_run("tfidf-lr-lbfgs", train, dev, args.bootstrap)
    if args.synthetic:
        synthetic = synthetic_like(train, args.synthetic, seed=1)
        for name in names:
            plan = UtilityPlan(classifier=name, grid="paper", seeds=tuple(range(args.seeds)), bootstrap=args.bootstrap,
                               jobs=args.jobs)
            started = time.perf_counter()
            result = utility_evaluate(real=train, evaluation=dev, synthetic=synthetic, plan=plan)
            elapsed = time.perf_counter() - started
            timings = result.timings
            print(f"\npaper grid, {name}, {len(train)} real + {len(synthetic)} synthetic-like notes, {args.seeds} "
                  f"seeds, {args.jobs} processes: {elapsed:.0f} s ({timings['fits']} fits {timings['fits_s']:.0f} s, "
                  f"overlap {timings['overlap_s']:.0f} s, n-grams {timings['features_s']:.0f} s, metrics "
                  f"{timings['metrics_s']:.0f} s); peak RSS {peak_rss_mb():.0f} MB")
            print(utility_table(result), flush=True)


if __name__ == "__main__":
    main()
