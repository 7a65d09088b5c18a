"""Utility of synthetic notes: does adding them to real training notes improve ICD-10 code prediction, and for which
codes? The paper's three experiments (METHOD.md, Evaluation), run on one pool of training notes:

- the mixing grid: each fraction of the real training notes kept x each fraction of the synthetic notes added, plus
  synthetic notes only; every real-plus-synthetic cell is compared with the real-only cell of the same real
  fraction and seed;
- upsampling: synthetic notes added only to the codes with fewer than T real training notes, until each has T;
- out of the training set: some codes taken out of the real training notes and learned from their synthetic notes
  only, scored on their real evaluation notes (without synthetic notes they cannot be predicted at all; the real-only
  cell, which learned them from real notes, is the comparison).

Subsampling is stratified by code and nested: for a seed, each code's real (and synthetic) notes are shuffled once,
and a fraction f keeps the first round(f x n) of them (at least one), so the 50 % subset lies inside the 75 % one
and cells differ only in what their fractions change. A cell whose training set does not depend on the seed is
fitted once. Scores: metrics.py; overlap with the evaluation set: overlap.py; features: classifiers.py.

A run has three steps: utility_prepare plans it (a UtilityRun: the pool, the cells and the distinct training sets),
UtilityRun.fit computes fit i (in any process that prepared the same run), utility_result computes the result from
all the fits. utility_evaluate does the three in one process (the management command, the benchmarks); a utility
evaluation job shares the fits out over the default workers (review.utility.jobs), to the same result.
"""

from __future__ import annotations

import hashlib
import json
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import scipy
import sklearn
from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from medsyn_site.core.icd10 import icd_chapter

from .classifiers import (
    CLASSIFIERS,
    DEFAULT_CLASSIFIER,
    ClassifierSpec,
    FeatureSpace,
    scores_fit,
    training_sets_fit,
)
from .datasets import LABEL_LEVEL, NoteSet
from .metrics import METRICS, Predictions, bootstrap_counts, metric_value, predictions_from_scores
from .overlap import OverlapReport, OverlapThresholds, overlap_check

Progress = Callable[[int, int], None]  # (fits done, fits in the run)

GRID, SYNTHETIC_ONLY, UPSAMPLING, OUT_OF_TRAINING = "grid", "synthetic_only", "upsampling", "out_of_training"
REAL_ONLY = "real=1 synthetic=0"  # the full real-only cell: the reference figure, and what the deciles are ranked by


@dataclass(frozen=True)
class Grid:
    """The cells of a run. 0 is always among the synthetic fractions: every real fraction needs its real-only
    baseline."""

    name: str
    real_fractions: tuple[float, ...]
    synthetic_fractions: tuple[float, ...]
    synthetic_only: bool = True
    upsampling: bool = True
    out_of_training: bool = True


GRIDS = {grid.name: grid for grid in (
    Grid("paper", real_fractions=(0.5, 0.75, 1.0), synthetic_fractions=(0.0, 0.25, 0.5, 1.0)),
    Grid("quick", real_fractions=(1.0,), synthetic_fractions=(0.0, 1.0)),
)}


@dataclass(frozen=True)
class UtilityPlan:
    """What to run, beyond the notes. upsample_to 50: about RuMedTop3's mean number of training notes a code (4690
    over 105 codes), so upsampling tops up the rarer half of the codes. held_out_codes empty: held_out_count codes
    with real training, synthetic and evaluation notes, drawn with the first seed."""

    classifier: str = DEFAULT_CLASSIFIER
    grid: str = "paper"
    seeds: tuple[int, ...] = (0, 1, 2)
    upsample_to: int = 50
    held_out_codes: tuple[str, ...] = ()
    held_out_count: int = 5
    bootstrap: int = 1000
    bootstrap_seed: int = 17
    decile: float = 0.1
    overlap: OverlapThresholds = field(default_factory=OverlapThresholds)
    jobs: int = 1  # processes fitting cells at once (the results do not depend on it)

    def check(self) -> None:
        problems = []
        if self.classifier not in CLASSIFIERS:
            problems.append(_("Unknown classifier %(name)s; expected one of %(names)s.") % {
                "name": self.classifier, "names": ", ".join(CLASSIFIERS)})
        if self.grid not in GRIDS:
            problems.append(_("Unknown grid %(name)s; expected one of %(names)s.") % {
                "name": self.grid, "names": ", ".join(GRIDS)})
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            problems.append(_("Give one or more distinct seeds."))
        if self.bootstrap < 100:
            problems.append(_("Use at least 100 bootstrap resamples."))
        if self.upsample_to < 1 or self.held_out_count < 1 or not 0 < self.decile <= 0.5:
            problems.append(_("The upsampling target and the held-out count are positive; the decile in (0, 0.5]."))
        if self.jobs < 1:
            problems.append(_("Use one process or more."))
        if not 0 <= self.overlap.max_share < 1:
            problems.append(_("The largest overlap allowed is a share in [0, 1)."))
        if problems:
            raise ValidationError(problems)


@dataclass(frozen=True)
class CellPlan:
    key: str
    kind: str
    real_fraction: float
    synthetic_fraction: float
    baseline: str | None  # key of the real-only cell it is compared with (None: it is one)


def grid_cell_key(real_fraction: float, synthetic_fraction: float) -> str:
    return f"real={real_fraction:g} synthetic={synthetic_fraction:g}"


def cells_plan(grid: Grid, *, synthetic: bool) -> list[CellPlan]:
    """The cells of a grid; without synthetic notes only its real-only cells."""
    cells = []
    for real in grid.real_fractions:
        for extra in sorted({0.0, *grid.synthetic_fractions}) if synthetic else [0.0]:
            cells.append(CellPlan(grid_cell_key(real, extra), GRID, real, extra,
                                  None if extra == 0 else grid_cell_key(real, 0.0)))
    if REAL_ONLY not in {cell.key for cell in cells}:
        cells.append(CellPlan(REAL_ONLY, GRID, 1.0, 0.0, None))
    if synthetic:
        extras = ((grid.synthetic_only, SYNTHETIC_ONLY, 0.0, 1.0), (grid.upsampling, UPSAMPLING, 1.0, 0.0),
                  (grid.out_of_training, OUT_OF_TRAINING, 1.0, 0.0))
        cells += [CellPlan(kind, kind, real, extra, REAL_ONLY) for wanted, kind, real, extra in extras if wanted]
    return cells


def _kept(count: int, fraction: float) -> int:
    """How many of count notes a fraction keeps: rounded half up, at least one of a non-empty code."""
    if fraction >= 1 or count == 0:
        return count
    if fraction <= 0:
        return 0
    return max(1, math.floor(fraction * count + 0.5))


class TrainingPool:
    """The real and synthetic training notes as one pool; a cell's training set is a sorted array of pool rows."""

    def __init__(self, labels: np.ndarray, synthetic: np.ndarray, *, upsample_to: int, held_out: np.ndarray) -> None:
        self.labels = labels
        self.synthetic = synthetic
        self.upsample_to = upsample_to
        self.held_out = held_out  # label indices taken out of the real notes by the out-of-training cell
        self._orders: dict[int, tuple[dict[int, np.ndarray], dict[int, np.ndarray]]] = {}

    def _by_label(self, rows: np.ndarray, rng: np.random.Generator) -> dict[int, np.ndarray]:
        return {int(label): rng.permutation(rows[self.labels[rows] == label])
                for label in np.unique(self.labels[rows])}

    def orders(self, seed: int) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
        """Each code's real rows and synthetic rows shuffled with the seed (separate streams: the real subsets do not
        depend on the synthetic notes)."""
        if seed not in self._orders:
            self._orders[seed] = (self._by_label(np.flatnonzero(~self.synthetic), np.random.default_rng([seed, 0])),
                                  self._by_label(np.flatnonzero(self.synthetic), np.random.default_rng([seed, 1])))
        return self._orders[seed]

    def rows(self, cell: CellPlan, seed: int) -> np.ndarray:
        real, synthetic = self.orders(seed)
        chosen = []
        if cell.kind == OUT_OF_TRAINING:
            chosen += [rows for label, rows in real.items() if label not in self.held_out]
            chosen += [rows for label, rows in synthetic.items() if label in self.held_out]
        else:
            chosen += [rows[:_kept(len(rows), cell.real_fraction)] for rows in real.values()]
            chosen += [rows[:_kept(len(rows), cell.synthetic_fraction)] for rows in synthetic.values()]
        if cell.kind == UPSAMPLING:
            for label, rows in synthetic.items():
                missing = self.upsample_to - len(real.get(label, ()))
                if missing > 0:
                    chosen.append(rows[:missing])
        return np.sort(np.concatenate(chosen)) if chosen else np.array([], dtype=np.int64)


@dataclass
class CellResult:
    key: str
    kind: str
    label: str
    real_fraction: float
    synthetic_fraction: float
    baseline: str | None
    training: list[dict]  # per seed: real and synthetic notes trained on
    metrics: dict[str, dict[str, dict]]  # subset -> metric -> MetricValue as a dict


@dataclass
class UtilityResult:
    """A finished evaluation; as_json() holds the exact inputs to repeat it."""

    inputs: dict
    overlap: dict
    pool: dict
    labels: list[str]
    subsets: dict[str, list[str]]
    cells: list[CellResult]
    per_code: list[dict]
    per_chapter: list[dict]
    timings: dict

    def cell(self, key: str) -> CellResult:
        return next(cell for cell in self.cells if cell.key == key)

    def as_json(self) -> dict:
        return _finite(asdict(self))

    def json_write(self, path: Path) -> None:
        path.write_text(json.dumps(self.as_json(), ensure_ascii=False, indent=1, allow_nan=False) + "\n",
                        encoding="utf-8")


def _finite(value):
    """NaN (a subset no resample or cell could score) as null: JSON has no NaN."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def cell_label(cell: CellPlan) -> str:
    if cell.kind == SYNTHETIC_ONLY:
        return _("synthetic only")
    if cell.kind == UPSAMPLING:
        return _("upsampling")
    if cell.kind == OUT_OF_TRAINING:
        return _("out of training set")
    return _("real %(real)d%% + synthetic %(synthetic)d%%") % {"real": round(100 * cell.real_fraction),
                                                                "synthetic": round(100 * cell.synthetic_fraction)}


def _held_out_codes(plan: UtilityPlan, labels: list[str], real_counts: np.ndarray, synthetic_counts: np.ndarray,
                    evaluation_counts: np.ndarray) -> list[str]:
    eligible = [code for i, code in enumerate(labels)
                if real_counts[i] and synthetic_counts[i] and evaluation_counts[i]]
    if plan.held_out_codes:
        if wrong := sorted(set(plan.held_out_codes) - set(eligible)):
            raise ValidationError(_("Codes to hold out need real training, synthetic and evaluation notes; these lack "
                                    "some: %(codes)s") % {"codes": ", ".join(wrong)})
        return sorted(set(plan.held_out_codes))
    rng = np.random.default_rng([plan.seeds[0], 2])
    return sorted(rng.choice(eligible, size=min(plan.held_out_count, len(eligible)), replace=False).tolist())


def _per_label(runs: list[Predictions], truth: np.ndarray, label_count: int) -> dict[str, np.ndarray]:
    """Seed-averaged accuracy, Hit@3 and F1 of each label (NaN for a label with no evaluation note)."""
    notes = np.bincount(truth, minlength=label_count).astype(np.float64)
    found = {"accuracy": [], "hit3": [], "f1": []}
    for run in runs:
        right = run.predicted == truth
        with np.errstate(invalid="ignore", divide="ignore"):
            found["accuracy"].append(np.bincount(truth, weights=right, minlength=label_count) / notes)
            found["hit3"].append(np.bincount(truth, weights=run.rank < 3, minlength=label_count) / notes)
            predicted = np.bincount(run.predicted, minlength=label_count)
            hits = np.bincount(truth[right], minlength=label_count)
            found["f1"].append(np.where(notes + predicted > 0, 2 * hits / (notes + predicted), 0.0))
    return {name: np.mean(values, axis=0) for name, values in found.items()}


def _subsets(plan: UtilityPlan, labels: list[str], real_counts: np.ndarray, evaluation_counts: np.ndarray,
             real_only_accuracy: np.ndarray, held_out: list[int]) -> dict[str, list[int]]:
    """The codes scored apart (label indices): the decile of evaluated codes with the fewest real training notes,
    the decile the full real-only cell predicts worst (ties: fewer notes first), and the held-out codes."""
    evaluated = np.flatnonzero(evaluation_counts)
    decile = max(1, math.ceil(plan.decile * len(evaluated)))
    subsets = {
        "rarest": sorted(evaluated, key=lambda i: (real_counts[i], labels[i]))[:decile],
        "hardest": sorted(evaluated, key=lambda i: (real_only_accuracy[i], real_counts[i], labels[i]))[:decile],
    }
    if held_out:
        subsets["held_out"] = held_out
    return subsets


def _per_chapter(runs: dict[str, list[Predictions]], labels: list[str], truth: np.ndarray) -> list[dict]:
    """Accuracy and Hit@3 of every cell on the evaluation notes of each ICD-10 chapter (core.icd10)."""
    chapters = np.array([icd_chapter(code) for code in labels])
    found = []
    for chapter in sorted(set(chapters[truth])):
        mask = chapters[truth] == chapter
        found.append({"chapter": chapter, "evaluation": int(mask.sum()),
                      "codes": sorted({labels[i] for i in truth[mask]}),
                      "cells": {key: {metric: float(np.mean([_hits(run, truth, metric)[mask].mean() for run in cell]))
                                      for metric in ("accuracy", "hit3")}
                                for key, cell in runs.items()}})
    return found


@dataclass
class UtilityRun:
    """A run prepared (utility_prepare): the notes read and checked for overlap, the pool of training notes, the
    cells, and the distinct training sets, each one fit. Everything in it follows from the notes and the plan, so
    every process that prepares the same notes with the same plan has the same fits in the same order (fingerprint
    names them): fit i may be computed by any of them (a chunked evaluation shares its fits over workers) and the
    result (utility_result) does not depend on where.

    The n-gram counts of the pool (FeatureSpace) are made the first time a fit needs them, once per run object."""

    plan: UtilityPlan
    real: NoteSet
    evaluation: NoteSet
    synthetic: NoteSet | None
    overlap: OverlapReport
    labels: list[str]
    pool_texts: list[str]
    pool_labels: np.ndarray
    is_synthetic: np.ndarray
    synthetic_outside_labels: int
    truth: np.ndarray
    cells: list[CellPlan]
    held_out: list[str]
    rows_of: dict[tuple[str, int], np.ndarray]  # (cell key, seed) -> its training set (sorted pool rows)
    training_sets: list[np.ndarray]  # the distinct training sets, in the order the cells first need them
    fit_of: dict[tuple[str, int], int]  # (cell key, seed) -> index of its training set
    overlap_s: float
    _space: FeatureSpace | None = field(default=None, repr=False)
    _space_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def spec(self) -> ClassifierSpec:
        return CLASSIFIERS[self.plan.classifier]

    @property
    def label_count(self) -> int:
        return len(self.labels)

    @property
    def fit_count(self) -> int:
        return len(self.training_sets)

    def counts(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per label: real training notes, synthetic training notes, evaluation notes."""
        count = self.label_count
        return (np.bincount(self.pool_labels[~self.is_synthetic], minlength=count),
                np.bincount(self.pool_labels[self.is_synthetic], minlength=count),
                np.bincount(self.truth, minlength=count))

    def training_sha256(self, index: int) -> str:
        """Names training set index (its pool rows); a stored fit is checked against it."""
        return hashlib.sha256(self.training_sets[index].astype("<i8").tobytes()).hexdigest()

    @cached_property
    def fingerprint(self) -> str:
        """sha256 of everything the fits and the result depend on: the notes read (their hashes), the overlap
        exclusions, the plan, the labels and every training set."""
        described = {"real": self.real.sha256, "evaluation": self.evaluation.sha256,
                     "synthetic": self.synthetic.sha256 if self.synthetic is not None else None,
                     "real_excluded": sorted(self.overlap.real_excluded),
                     "synthetic_excluded": sorted(self.overlap.synthetic_excluded),
                     "plan": {**asdict(self.plan), "jobs": None, "overlap": self.plan.overlap.describe()},
                     "classifier": {key: value for key, value in self.spec.describe().items()
                                    if key != "description"},  # in the process's language
                     "labels": self.labels, "held_out": self.held_out,
                     "cells": [asdict(cell) for cell in self.cells],
                     "training_sets": [self.training_sha256(index) for index in range(self.fit_count)]}
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()

    def features(self) -> tuple[FeatureSpace, float]:
        """The pool's n-gram counts (made once: threads asking meanwhile wait for them) and the seconds this call
        spent making them (0 when they were there)."""
        with self._space_lock:
            if self._space is not None:
                return self._space, 0.0
            started = time.monotonic()
            self._space = FeatureSpace(self.spec, self.pool_texts, [note.text for note in self.evaluation.notes])
            return self._space, time.monotonic() - started

    def fit(self, index: int) -> Predictions:
        """Fit training set index and score the evaluation set."""
        space, _seconds = self.features()
        return predictions_from_scores(
            scores_fit(self.spec, space, self.training_sets[index], self.pool_labels, self.label_count), self.truth)


def utility_prepare(*, real: NoteSet, evaluation: NoteSet, synthetic: NoteSet | None = None,
                    plan: UtilityPlan | None = None, overlap: OverlapReport | None = None) -> UtilityRun:
    """Check the plan and the notes, leave out the training notes that overlap the evaluation set, and plan the
    cells and their training sets. ValidationError for an empty set or a plan the notes cannot carry;
    overlap.OverlapRefused when the real training notes overlap the evaluation set more than allowed. overlap: the
    report a check of these very notes made before (a chunk of a run: core.chunks), used instead of checking again."""
    plan = plan or UtilityPlan()
    plan.check()
    if not real.notes or not evaluation.notes:
        raise ValidationError(_("Both the real training notes and the evaluation set need notes."))
    synthetic_notes = synthetic.notes if synthetic is not None else ()
    started = time.monotonic()
    if overlap is None:
        overlap = overlap_check(real=real.notes, synthetic=synthetic_notes, evaluation=evaluation.notes,
                                thresholds=plan.overlap)
    real_kept = [note for j, note in enumerate(real.notes) if j not in overlap.real_excluded]
    labels = sorted({note.code for note in real_kept} | {note.code for note in evaluation.notes})
    label_index = {code: i for i, code in enumerate(labels)}
    synthetic_clean = [note for j, note in enumerate(synthetic_notes) if j not in overlap.synthetic_excluded]
    synthetic_kept = [note for note in synthetic_clean if note.code in label_index]
    pool = real_kept + synthetic_kept
    pool_labels = np.array([label_index[note.code] for note in pool], dtype=np.int64)
    is_synthetic = np.arange(len(pool)) >= len(real_kept)
    truth = np.array([label_index[note.code] for note in evaluation.notes], dtype=np.int64)
    label_count = len(labels)
    real_counts = np.bincount(pool_labels[~is_synthetic], minlength=label_count)
    synthetic_counts = np.bincount(pool_labels[is_synthetic], minlength=label_count)
    evaluation_counts = np.bincount(truth, minlength=label_count)

    cells = cells_plan(GRIDS[plan.grid], synthetic=bool(synthetic_kept))
    held_out = (_held_out_codes(plan, labels, real_counts, synthetic_counts, evaluation_counts)
                if any(cell.kind == OUT_OF_TRAINING for cell in cells) else [])
    if any(cell.kind == OUT_OF_TRAINING for cell in cells) and not held_out:
        cells = [cell for cell in cells if cell.kind != OUT_OF_TRAINING]
    training = TrainingPool(pool_labels, is_synthetic, upsample_to=plan.upsample_to,
                            held_out=np.array([label_index[code] for code in held_out], dtype=np.int64))
    rows_of = {(cell.key, seed): training.rows(cell, seed) for cell in cells for seed in plan.seeds}
    for (key, _seed), rows in rows_of.items():
        if len(np.unique(pool_labels[rows])) < 2:
            raise ValidationError(_("Cell %(cell)s would train on fewer than two codes.") % {"cell": key})
    distinct: dict[bytes, int] = {}  # a cell whose training set does not depend on the seed is fitted once
    fit_of = {cell_seed: distinct.setdefault(rows.tobytes(), len(distinct)) for cell_seed, rows in rows_of.items()}
    return UtilityRun(
        plan=plan, real=real, evaluation=evaluation, synthetic=synthetic, overlap=overlap, labels=labels,
        pool_texts=[note.text for note in pool], pool_labels=pool_labels, is_synthetic=is_synthetic,
        synthetic_outside_labels=len(synthetic_clean) - len(synthetic_kept), truth=truth, cells=cells,
        held_out=held_out, rows_of=rows_of, training_sets=[np.frombuffer(key, dtype=np.int64) for key in distinct],
        fit_of=fit_of, overlap_s=time.monotonic() - started)


def utility_result(run: UtilityRun, fits: Sequence[Predictions], *, timings: dict) -> UtilityResult:
    """The result of a run from its fits (fits[i]: the fit of training set i, wherever it was computed): the
    metrics of every cell with bootstrap intervals and paired tests, per code, per chapter, and the exact inputs.
    timings: how long the steps took (recorded as given, with metrics_s and the number of fits added)."""
    if len(fits) != run.fit_count:
        raise ValueError(f"{len(fits)} fits for a run of {run.fit_count}")
    plan, labels, truth, cells, label_count = run.plan, run.labels, run.truth, run.cells, run.label_count
    started = time.monotonic()
    real_counts, synthetic_counts, evaluation_counts = run.counts()
    label_index = {code: i for i, code in enumerate(labels)}
    runs = {cell.key: [fits[run.fit_of[cell.key, seed]] for seed in plan.seeds] for cell in cells}
    per_label = {cell.key: _per_label(runs[cell.key], truth, label_count) for cell in cells}
    subsets = _subsets(plan, labels, real_counts, evaluation_counts, per_label[REAL_ONLY]["accuracy"],
                       [label_index[code] for code in run.held_out])
    weights = bootstrap_counts(len(truth), plan.bootstrap, plan.bootstrap_seed)
    masks = {"all": (None, None)}
    masks.update({name: (np.isin(truth, ids), np.array(sorted(ids))) for name, ids in subsets.items()})
    results = []
    for cell in cells:
        baseline = runs[cell.baseline] if cell.baseline else None
        metrics = {name: {metric: asdict(metric_value(runs[cell.key], truth, label_count, weights, metric=metric,
                                                      baseline=baseline, mask=mask, labels=ids))
                          for metric in METRICS}
                   for name, (mask, ids) in masks.items()}
        sizes = [{"seed": seed, "real": int(np.count_nonzero(~run.is_synthetic[run.rows_of[cell.key, seed]])),
                  "synthetic": int(np.count_nonzero(run.is_synthetic[run.rows_of[cell.key, seed]]))}
                 for seed in plan.seeds]
        results.append(CellResult(key=cell.key, kind=cell.kind, label=cell_label(cell),
                                  real_fraction=cell.real_fraction, synthetic_fraction=cell.synthetic_fraction,
                                  baseline=cell.baseline, training=sizes, metrics=metrics))
    evaluated = np.flatnonzero(evaluation_counts)
    per_code = [{"code": labels[i], "chapter": icd_chapter(labels[i]), "evaluation": int(evaluation_counts[i]),
                 "real": int(real_counts[i]), "synthetic": int(synthetic_counts[i]),
                 "cells": {key: {name: float(values[i]) for name, values in found.items()}
                           for key, found in per_label.items()}}
                for i in evaluated]
    per_chapter = _per_chapter(runs, labels, truth)
    metrics_s = time.monotonic() - started

    grid = GRIDS[plan.grid]
    real, evaluation, synthetic = run.real, run.evaluation, run.synthetic
    inputs = {
        "real": real.describe(), "evaluation": evaluation.describe(),
        "synthetic": synthetic.describe() if synthetic is not None else None,
        "classifier": run.spec.describe(), "label": LABEL_LEVEL,
        "grid": {**asdict(grid), "cells": [cell.key for cell in cells]},
        "seeds": list(plan.seeds), "upsample_to": plan.upsample_to, "held_out_codes": run.held_out,
        "held_out_requested": list(plan.held_out_codes), "held_out_count": plan.held_out_count,
        "bootstrap": plan.bootstrap, "bootstrap_seed": plan.bootstrap_seed, "decile": plan.decile,
        "overlap": plan.overlap.describe(), "jobs": plan.jobs,
        "versions": {"scikit-learn": sklearn.__version__, "numpy": np.__version__, "scipy": scipy.__version__},
    }
    return UtilityResult(
        inputs=inputs, overlap=run.overlap.describe(),
        pool={"real": int(np.count_nonzero(~run.is_synthetic)), "synthetic": int(np.count_nonzero(run.is_synthetic)),
              "synthetic_outside_labels": run.synthetic_outside_labels, "labels": label_count},
        labels=labels, subsets={name: [labels[i] for i in ids] for name, ids in subsets.items()},
        cells=results, per_code=per_code, per_chapter=per_chapter,
        timings={**timings, "fits": run.fit_count, "metrics_s": metrics_s})


def utility_evaluate(*, real: NoteSet, evaluation: NoteSet, synthetic: NoteSet | None = None,
                     plan: UtilityPlan | None = None, progress: Progress | None = None) -> UtilityResult:
    """Run the plan's grid on these notes in this process (plan.jobs processes fitting): utility_prepare, every fit,
    utility_result. ValidationError for an empty set or a bad plan; overlap.OverlapRefused when the real training
    notes overlap the evaluation set more than allowed. (A utility evaluation job shares the same fits over the
    workers of its queue instead: review.utility.jobs.)"""
    run = utility_prepare(real=real, evaluation=evaluation, synthetic=synthetic, plan=plan)
    space, features_s = run.features()
    started = time.monotonic()
    fits = []
    keys = [rows.tobytes() for rows in run.training_sets]
    predictions = training_sets_fit(run.spec, space, keys, run.pool_labels, run.label_count, run.truth,
                                    jobs=run.plan.jobs)
    for done, fitted in enumerate(predictions, start=1):
        fits.append(fitted)
        if progress is not None:
            progress(done, run.fit_count)
    return utility_result(run, fits, timings={"overlap_s": run.overlap_s, "features_s": features_s,
                                              "fits_s": time.monotonic() - started})


def _hits(run: Predictions, truth: np.ndarray, metric: str) -> np.ndarray:
    return run.predicted == truth if metric == "accuracy" else run.rank < int(metric.removeprefix("hit"))


def code_lifts(result: UtilityResult, key: str, metric: str = "accuracy") -> list[dict]:
    """Per code, a cell's metric minus its baseline's (the per-code lift chart), largest lift first; ties by code."""
    baseline = result.cell(key).baseline
    if baseline is None:
        raise ValueError(f"cell {key} is a baseline itself")
    lifts = [{"code": row["code"], "evaluation": row["evaluation"], "real": row["real"],
              "synthetic": row["synthetic"], "value": row["cells"][key][metric],
              "baseline": row["cells"][baseline][metric],
              "lift": row["cells"][key][metric] - row["cells"][baseline][metric]} for row in result.per_code]
    return sorted(lifts, key=lambda row: (-row["lift"], row["code"]))


def utility_table(result: UtilityResult, metrics: tuple[str, ...] = ("accuracy", "hit3")) -> str:
    """The grid as text: for each metric, real fractions down, synthetic fractions across, each cell "value
    (difference from real-only, p)"; then the other experiments and the deciles."""
    names = {"accuracy": _("accuracy"), "hit3": "Hit@3", "hit5": "Hit@5", "macro_f1": "macro-F1"}
    grid = [cell for cell in result.cells if cell.kind == GRID]
    reals = sorted({cell.real_fraction for cell in grid})
    extras = sorted({cell.synthetic_fraction for cell in grid})

    def shown(cell: CellResult, metric: str, subset: str = "all") -> str:
        value = cell.metrics[subset][metric]
        if value["value"] is None or math.isnan(value["value"]):
            return "-"
        text = f"{100 * value['value']:.1f}"
        if value["delta"] is not None:
            text += f" ({100 * value['delta']:+.1f}, p {value['p']:.3f})"
        return text

    lines = []
    for metric in metrics:
        lines.append(f"{names[metric]} %: " + _("real fraction down, synthetic fraction across"))
        header = [""] + [_("synthetic %(share)d%%") % {"share": round(100 * extra)} for extra in extras]
        rows = [header]
        for share in reals:
            row = [_("real %(share)d%%") % {"share": round(100 * share)}]
            for extra in extras:
                found = [cell for cell in grid if cell.real_fraction == share and cell.synthetic_fraction == extra]
                row.append(shown(found[0], metric) if found else "")
            rows.append(row)
        widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
        lines += ["  ".join(item.ljust(width) for item, width in zip(row, widths, strict=True)).rstrip()
                  for row in rows]
        lines.append("")
    for cell in result.cells:
        if cell.kind != GRID:
            lines.append(f"{cell.label}: " + ", ".join(f"{names[metric]} {shown(cell, metric)}" for metric in metrics))
    for subset in ("rarest", "hardest", "held_out"):
        if subset in result.subsets:
            parts = [f"{cell.label} {shown(cell, 'accuracy', subset)}" for cell in result.cells
                     if cell.kind != GRID or cell.real_fraction == 1]
            lines.append(_("%(subset)s codes (%(count)d), accuracy %%: ") % {
                "subset": subset.replace("_", " "), "count": len(result.subsets[subset])} + "; ".join(parts))
    return "\n".join(lines)
