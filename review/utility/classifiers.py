"""The classifiers a utility evaluation trains, and the features they share across the cells of a run.

A classifier is TF-IDF blocks plus a linear model, all scikit-learn. Every cell of a grid trains on a different
subset of one pool of notes (real and synthetic), so the expensive part of vectorising (cutting every text into
n-grams and counting them) is done once over the pool (FeatureSpace); a cell's TF-IDF matrix is derived from those
counts exactly as a TfidfVectorizer fitted on the cell's training texts computes it: the cell's vocabulary is the
n-grams occurring in its training texts (kept in the sorted order TfidfVectorizer gives them), its idf comes from
their document frequencies, and evaluation texts are counted on that vocabulary only. The real-only cell is thus
the plain scikit-learn fit on the real training notes.

Classifiers, measured by bench/bench_utility_reference.py on RuMedTop3 train -> dev through this engine (the 6 train
notes that nearly duplicate a dev note left out; accuracy / Hit@3 / Hit@5 / macro-F1, fit time on two busy cores):
- tfidf-lr, the RuMedBench baseline and the default: TF-IDF of word-bounded character 3-8-grams and logistic
  regression, C 10. STACK.md's reference measurement used scikit-learn's default lbfgs solver (max_iter 2000):
  46.5 / 71.1 on dev. The same objective is solved here with SAG (tol 1e-3): 46.46 / 70.99 / 78.66 / 31.6 in 42 s,
  against lbfgs's 46.46 / 70.99 / 79.01 / 31.7 in 490 s and 6.7 GB (REFERENCE_SOLVER). RuMedBench's own script
  (code/linear_models/single_text_classifier.py) used analyzer "char" (not word-bounded), one-vs-rest and lbfgs's
  default 100 iterations; its published test figures are 49.76 / 72.75.
- tfidf-svm, stronger on accuracy and faster: sublinear TF-IDF of word-bounded character 1-5-grams and of words and
  word pairs, a linear SVM (C 0.3, one-vs-rest), classes ranked by its decision values: 48.11 / 70.87 / 77.24 / 32.9
  in 16 s. (Chosen among six feature sets and three C values on dev: its lead in accuracy is partly that choice.)
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.sparse as sp
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from joblib import Parallel, delayed
from sklearn.feature_extraction.text import CountVectorizer, TfidfTransformer, TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.svm import LinearSVC

from .metrics import Predictions, predictions_from_scores

ESTIMATORS = {"logistic_regression": LogisticRegression, "linear_svc": LinearSVC}
# liblinear (LinearSVC's dual solver) draws from one process-wide random generator: two fits at once in threads of
# one process (a worker's thread pool running two chunks of an evaluation) would disturb each other's draws and give
# other coefficients than the same fits one after another. They take turns; SAG (LogisticRegression) keeps its
# generator per fit and runs alongside.
PROCESS_WIDE_RANDOM = {"linear_svc"}
_PROCESS_WIDE_RANDOM_LOCK = threading.Lock()


@dataclass(frozen=True)
class TfidfBlock:
    """One TfidfVectorizer: these analysis settings and scikit-learn's defaults for the rest (lower-casing,
    l2 norm, smoothed idf, every n-gram kept)."""

    analyzer: str
    ngram_range: tuple[int, int]
    sublinear_tf: bool = False

    def vectorizer(self) -> TfidfVectorizer:
        return TfidfVectorizer(analyzer=self.analyzer, ngram_range=self.ngram_range, sublinear_tf=self.sublinear_tf)

    def counter(self) -> CountVectorizer:
        """The counting half of vectorizer(): the same analysis, the same sorted vocabulary."""
        return CountVectorizer(analyzer=self.analyzer, ngram_range=self.ngram_range, dtype=np.float64)

    def transformer(self) -> TfidfTransformer:
        """The weighting half of vectorizer()."""
        vectorizer = self.vectorizer()
        return TfidfTransformer(norm=vectorizer.norm, use_idf=vectorizer.use_idf, smooth_idf=vectorizer.smooth_idf,
                                sublinear_tf=vectorizer.sublinear_tf)


@dataclass(frozen=True)
class ClassifierSpec:
    name: str
    description: str | Promise
    blocks: tuple[TfidfBlock, ...]
    estimator: str  # a key of ESTIMATORS
    estimator_params: dict = field(default_factory=dict)

    def estimator_make(self):
        return ESTIMATORS[self.estimator](**self.estimator_params)

    def with_params(self, **params) -> ClassifierSpec:
        """The same classifier with some estimator parameters changed (the reference lbfgs solver, say)."""
        return replace(self, estimator_params={**self.estimator_params, **params})

    def describe(self) -> dict:
        """Every parameter, scikit-learn's defaults included, so a run can be repeated exactly."""
        return {"name": self.name, "description": str(self.description),
                "features": [_json_params(block.vectorizer().get_params()) for block in self.blocks],
                "estimator": ESTIMATORS[self.estimator].__name__,
                "estimator_params": _json_params(self.estimator_make().get_params())}


def _json_params(params: dict) -> dict:
    """get_params() as JSON: types (dtype) by name, tuples as lists, callables (none are set) left out."""
    shown = {}
    for key, value in sorted(params.items()):
        if isinstance(value, type):
            shown[key] = value.__name__
        elif isinstance(value, tuple):
            shown[key] = list(value)
        elif value is None or isinstance(value, str | int | float | bool):
            shown[key] = value
    return shown


CLASSIFIERS: dict[str, ClassifierSpec] = {spec.name: spec for spec in (
    ClassifierSpec(
        name="tfidf-lr",
        description=_("RuMedBench baseline: TF-IDF of character 3-8-grams (word-bounded) and logistic regression, "
                      "C 10"),
        blocks=(TfidfBlock("char_wb", (3, 8)),),
        estimator="logistic_regression",
        estimator_params={"C": 10.0, "max_iter": 2000, "solver": "sag", "tol": 1e-3, "random_state": 0},
    ),
    ClassifierSpec(
        name="tfidf-svm",
        description=_("Sublinear TF-IDF of character 1-5-grams and of words and word pairs, and a linear SVM "
                      "(C 0.3): stronger on accuracy and faster"),
        blocks=(TfidfBlock("char_wb", (1, 5), sublinear_tf=True), TfidfBlock("word", (1, 2), sublinear_tf=True)),
        estimator="linear_svc",
        estimator_params={"C": 0.3, "random_state": 0},
    ),
)}
DEFAULT_CLASSIFIER = "tfidf-lr"
# The reference measurement of STACK.md: the baseline with lbfgs as scikit-learn runs it by default.
REFERENCE_SOLVER = {"solver": "lbfgs", "tol": 1e-4, "random_state": None}


class FeatureSpace:
    """N-gram counts of a pool of training texts and of the evaluation texts, counted once for every cell."""

    def __init__(self, spec: ClassifierSpec, training_texts: list[str], evaluation_texts: list[str]) -> None:
        self.spec = spec
        self._blocks = []
        for block in spec.blocks:
            counter = block.counter()
            counts = counter.fit_transform(training_texts).tocsr()
            self._blocks.append((block, counts, counter.transform(evaluation_texts).tocsr()))

    def cell(self, rows: np.ndarray) -> tuple[sp.csr_matrix, sp.csr_matrix]:
        """TF-IDF matrices (training rows, evaluation set) as TfidfVectorizer fitted on the texts of rows gives them."""
        training, evaluation = [], []
        for block, counts, evaluation_counts in self._blocks:
            cell_counts = counts[rows]
            vocabulary = np.flatnonzero(cell_counts.getnnz(axis=0))  # the n-grams these texts contain, sorted
            cell_counts = cell_counts[:, vocabulary]
            transformer = block.transformer().fit(cell_counts)
            training.append(transformer.transform(cell_counts))
            evaluation.append(transformer.transform(evaluation_counts[:, vocabulary]))
        if len(training) == 1:
            return training[0], evaluation[0]
        return sp.hstack(training, format="csr"), sp.hstack(evaluation, format="csr")


def scores_fit(spec: ClassifierSpec, space: FeatureSpace, rows: np.ndarray, labels: np.ndarray,
               label_count: int) -> np.ndarray:
    """Train on the pool notes at rows (labels: label index of every pool note) and score the evaluation notes:
    an (evaluation notes x label_count) matrix of decision values, -inf for labels the cell never saw."""
    training, evaluation = space.cell(rows)
    taking_turns = spec.estimator in PROCESS_WIDE_RANDOM
    with _PROCESS_WIDE_RANDOM_LOCK if taking_turns else contextlib.nullcontext():
        model = spec.estimator_make().fit(training, labels[rows])
    decision = model.decision_function(evaluation)
    if decision.ndim == 1:  # two classes: one value, positive for classes_[1]
        decision = np.column_stack([-decision, decision])
    scores = np.full((evaluation.shape[0], label_count), -np.inf)
    scores[:, model.classes_] = decision
    return scores


def _training_set_fit(spec: ClassifierSpec, space: FeatureSpace, key: bytes, labels: np.ndarray, label_count: int,
                      truth: np.ndarray) -> Predictions:
    rows = np.frombuffer(key, dtype=np.int64)
    return predictions_from_scores(scores_fit(spec, space, rows, labels, label_count), truth)


def training_sets_fit(spec: ClassifierSpec, space: FeatureSpace, keys: list[bytes], labels: np.ndarray,
                      label_count: int, truth: np.ndarray, *, jobs: int = 1) -> Iterator[Predictions]:
    """The predictions on the evaluation notes (truth: their label indices) of a fit on each training set (keys:
    sorted pool rows as int64 bytes), in order.

    With jobs > 1, joblib's worker processes fit them (threads would not do: liblinear, behind LinearSVC, draws
    from one process-wide random generator); every fit is seeded, so the results are those of one process. The
    count matrices reach the workers memory-mapped; this module imports no Django model, so a worker needs no
    Django set-up."""
    if jobs == 1:
        return (_training_set_fit(spec, space, key, labels, label_count, truth) for key in keys)
    return Parallel(n_jobs=jobs, return_as="generator")(
        delayed(_training_set_fit)(spec, space, key, labels, label_count, truth) for key in keys)
