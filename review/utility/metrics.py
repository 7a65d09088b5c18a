"""Scores of code prediction, their bootstrap intervals and the paired bootstrap test, vectorised over resamples.

A fit's scoring of the evaluation set is kept as Predictions: the top label of each note and the rank of its true
label. Accuracy and Hit@k are means of per-note indicators; macro-F1 is scikit-learn's f1_score(average="macro")
(labels: those present in the truth or the predictions, or a given list, a label with no note and no prediction
counting 0). A cell fitted with several seeds scores the mean over its seeds.

The bootstrap resamples evaluation notes: B multinomial draws of n notes from n, one count matrix W (B x n) shared by
every cell and metric, so the cells are compared on the same resamples (the paired test) and each metric of each
resample is a matrix product. Intervals are percentile intervals (2.5 %, 97.5 %). The paired test of a cell against
its baseline is two-sided: p = (1 + #{b: |d_b - d| >= |d|}) / (B + 1), d the observed difference and d_b its value
on resample b (the bootstrap distribution shifted to the null hypothesis of no difference). Identical predictions
give p = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HIT_KS = (3, 5)
METRICS = ("accuracy", "hit3", "hit5", "macro_f1")
PERCENTILES = (2.5, 97.5)


@dataclass(frozen=True)
class Predictions:
    """One fit's scoring of the evaluation set: predicted[i] is the top label of note i, rank[i] the rank of its
    true label (0: top; label_count when the fit never saw that label)."""

    predicted: np.ndarray
    rank: np.ndarray


def predictions_from_scores(scores: np.ndarray, truth: np.ndarray) -> Predictions:
    """Top label and true-label rank from a score matrix (-inf: a label not trained). Ties rank as argmax breaks
    them (lower label index first), so the rank is 0 exactly when the prediction is right."""
    count = scores.shape[1]
    predicted = scores.argmax(axis=1)
    true_scores = scores[np.arange(len(truth)), truth][:, None]
    columns = np.arange(count)[None, :]
    rank = ((scores > true_scores) | ((scores == true_scores) & (columns < truth[:, None]))).sum(axis=1)
    rank[np.isneginf(true_scores[:, 0])] = count
    return Predictions(predicted=predicted, rank=rank)


@dataclass(frozen=True)
class MetricValue:
    """A point estimate with its 95 % bootstrap interval; against a baseline also the difference, its interval
    and the paired test's p-value."""

    value: float
    low: float
    high: float
    delta: float | None = None
    delta_low: float | None = None
    delta_high: float | None = None
    p: float | None = None


def bootstrap_counts(size: int, resamples: int, seed: int) -> np.ndarray:
    """W (resamples x size): how many times each note is drawn in each resample of size notes."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(size, np.full(size, 1.0 / size), size=resamples).astype(np.float64)


def _indicator(predictions: Predictions, truth: np.ndarray, metric: str) -> np.ndarray:
    if metric == "accuracy":
        return (predictions.predicted == truth).astype(np.float64)
    return (predictions.rank < int(metric.removeprefix("hit"))).astype(np.float64)


def _mean_metric(runs: list[Predictions], truth: np.ndarray, metric: str, mask: np.ndarray,
                 weights: np.ndarray | None) -> np.ndarray:
    """The seed-averaged mean of a per-note indicator over the notes in mask: shape (1,) without weights (the point
    estimate), (B,) with them (NaN for a resample that drew none of those notes)."""
    indicators = np.stack([_indicator(run, truth, metric)[mask] for run in runs])  # seeds x notes
    if weights is None:
        return np.array([indicators.mean(axis=1).mean()]) if mask.any() else np.array([np.nan])
    drawn = weights[:, mask]
    with np.errstate(invalid="ignore", divide="ignore"):
        return (drawn @ indicators.T / drawn.sum(axis=1, keepdims=True)).mean(axis=1)


def _macro_f1(runs: list[Predictions], truth: np.ndarray, label_count: int, labels: np.ndarray | None,
              weights: np.ndarray | None) -> np.ndarray:
    """Seed-averaged macro-F1 as scikit-learn computes it, for the point estimate (weights None) or each resample."""
    counts = np.ones((1, len(truth))) if weights is None else weights
    true_onehot = np.zeros((len(truth), label_count))
    true_onehot[np.arange(len(truth)), truth] = 1.0
    true_counts = counts @ true_onehot  # B x labels
    scores = []
    for run in runs:
        predicted_onehot = np.zeros_like(true_onehot)
        predicted_onehot[np.arange(len(truth)), run.predicted] = 1.0
        hits = counts @ (true_onehot * predicted_onehot)
        support = true_counts + counts @ predicted_onehot  # true + predicted = 2 TP + FP + FN
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.where(support > 0, 2 * hits / support, 0.0)
        if labels is None:
            present = support > 0
            scores.append((f1 * present).sum(axis=1) / present.sum(axis=1))
        else:
            scores.append(f1[:, labels].mean(axis=1))
    return np.mean(scores, axis=0)


def metric_samples(runs: list[Predictions], truth: np.ndarray, label_count: int, *, metric: str,
                   mask: np.ndarray | None = None, labels: np.ndarray | None = None,
                   weights: np.ndarray | None = None) -> np.ndarray:
    """A metric of a cell (its runs: one Predictions per seed): the point estimate as a 1-array (weights None) or one
    value per resample. mask: the notes accuracy and Hit@k average over (all by default); labels: the labels
    macro-F1 averages over (those present by default), computed on every note."""
    if metric == "macro_f1":
        return _macro_f1(runs, truth, label_count, labels, weights)
    return _mean_metric(runs, truth, metric, np.ones(len(truth), bool) if mask is None else mask, weights)


def metric_value(cell: list[Predictions], truth: np.ndarray, label_count: int, weights: np.ndarray, *, metric: str,
                 baseline: list[Predictions] | None = None, mask: np.ndarray | None = None,
                 labels: np.ndarray | None = None) -> MetricValue:
    """Point estimate, percentile interval and, against a baseline scored on the same notes, the paired test."""
    def samples(runs: list[Predictions], resampled: np.ndarray | None) -> np.ndarray:
        return metric_samples(runs, truth, label_count, metric=metric, mask=mask, labels=labels, weights=resampled)

    point, resampled = samples(cell, None)[0], samples(cell, weights)
    low, high = np.nanpercentile(resampled, PERCENTILES)
    if baseline is None:
        return MetricValue(value=float(point), low=float(low), high=float(high))
    delta = point - samples(baseline, None)[0]
    deltas = resampled - samples(baseline, weights)
    deltas = deltas[~np.isnan(deltas)]
    delta_low, delta_high = np.percentile(deltas, PERCENTILES)
    extreme = np.count_nonzero(np.abs(deltas - delta) >= np.abs(delta))
    return MetricValue(value=float(point), low=float(low), high=float(high), delta=float(delta),
                       delta_low=float(delta_low), delta_high=float(delta_high),
                       p=float((1 + extreme) / (1 + len(deltas))))
