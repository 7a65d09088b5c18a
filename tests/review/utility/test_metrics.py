"""Scores, bootstrap intervals and the paired test against direct (loop, scikit-learn) computations."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import f1_score

from review.utility.metrics import (
    Predictions,
    bootstrap_counts,
    metric_samples,
    metric_value,
    predictions_from_scores,
)


def test_predictions_rank_true_labels_as_argmax_breaks_ties_and_untrained_labels_last():
    scores = np.array([[0.1, 0.7, 0.2, -np.inf],
                       [0.5, 0.5, 0.1, -np.inf],
                       [0.5, 0.5, 0.1, -np.inf],
                       [0.3, 0.2, 0.1, -np.inf]])
    truth = np.array([2, 0, 1, 3])
    predictions = predictions_from_scores(scores, truth)
    assert predictions.predicted.tolist() == [1, 0, 0, 0]
    # rank 0 exactly when argmax is right; a label the fit never saw is never within Hit@k
    assert predictions.rank.tolist() == [1, 0, 1, 4]


def random_runs(rng: np.random.Generator, size: int, labels: int, seeds: int,
                right: float) -> tuple[np.ndarray, list[Predictions]]:
    truth = rng.integers(0, labels, size)
    runs = []
    for _seed in range(seeds):
        predicted = np.where(rng.random(size) < right, truth, rng.integers(0, labels, size))
        rank = np.where(predicted == truth, 0, rng.integers(1, labels, size))
        runs.append(Predictions(predicted=predicted, rank=rank))
    return truth, runs


def test_bootstrap_samples_equal_a_direct_computation_on_each_resample():
    rng = np.random.default_rng(5)
    truth, runs = random_runs(rng, size=60, labels=6, seeds=2, right=0.5)
    weights = bootstrap_counts(60, 40, seed=3)
    assert weights.shape == (40, 60) and (weights.sum(axis=1) == 60).all()
    subset = np.isin(truth, [1, 2])
    accuracy = metric_samples(runs, truth, 6, metric="accuracy", weights=weights)
    hit3 = metric_samples(runs, truth, 6, metric="hit3", mask=subset, weights=weights)
    macro = metric_samples(runs, truth, 6, metric="macro_f1", weights=weights)
    macro_subset = metric_samples(runs, truth, 6, metric="macro_f1", labels=np.array([1, 2]), weights=weights)
    for b in range(40):
        drawn = np.repeat(np.arange(60), weights[b].astype(int))  # the resample as a list of notes
        expected_accuracy = np.mean([np.mean(run.predicted[drawn] == truth[drawn]) for run in runs])
        kept = drawn[subset[drawn]]
        expected_hit3 = np.mean([np.mean(run.rank[kept] < 3) for run in runs])
        expected_macro = np.mean([f1_score(truth[drawn], run.predicted[drawn], average="macro") for run in runs])
        expected_subset = np.mean([f1_score(truth[drawn], run.predicted[drawn], labels=[1, 2], average="macro",
                                            zero_division=0) for run in runs])
        assert accuracy[b] == pytest.approx(expected_accuracy)
        assert hit3[b] == pytest.approx(expected_hit3)
        assert macro[b] == pytest.approx(expected_macro)
        assert macro_subset[b] == pytest.approx(expected_subset)


def test_point_estimates_equal_scikit_learn_and_lie_in_their_intervals():
    rng = np.random.default_rng(8)
    truth, runs = random_runs(rng, size=200, labels=8, seeds=1, right=0.6)
    weights = bootstrap_counts(200, 1000, seed=17)
    for metric, expected in (("accuracy", np.mean(runs[0].predicted == truth)),
                             ("hit5", np.mean(runs[0].rank < 5)),
                             ("macro_f1", f1_score(truth, runs[0].predicted, average="macro"))):
        value = metric_value(runs, truth, 8, weights, metric=metric)
        assert value.value == pytest.approx(expected)
        assert value.low < value.value < value.high
        assert value.delta is None and value.p is None


def test_paired_test_gives_p_one_for_identical_predictions_and_a_small_p_for_a_clearly_better_cell():
    rng = np.random.default_rng(2)
    truth, runs = random_runs(rng, size=300, labels=5, seeds=1, right=0.4)
    weights = bootstrap_counts(300, 1000, seed=17)
    copy = [Predictions(predicted=run.predicted.copy(), rank=run.rank.copy()) for run in runs]
    same = metric_value(copy, truth, 5, weights, metric="accuracy", baseline=runs)
    assert (same.delta, same.delta_low, same.delta_high, same.p) == (0.0, 0.0, 0.0, 1.0)
    better = Predictions(predicted=np.where(rng.random(300) < 0.5, truth, runs[0].predicted), rank=runs[0].rank)
    found = metric_value([better], truth, 5, weights, metric="accuracy", baseline=runs)
    assert found.delta == pytest.approx(np.mean(better.predicted == truth) - np.mean(runs[0].predicted == truth))
    assert found.delta > 0.15 and found.delta_low > 0 and found.p < 0.01
