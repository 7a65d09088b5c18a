"""Every statistic against an independent implementation on fixed data."""

from __future__ import annotations

import math
import random

import krippendorff
import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.inter_rater import fleiss_kappa as sm_fleiss_kappa
from statsmodels.stats.proportion import proportion_confint

from review.assessment import stats


@pytest.mark.parametrize(("k", "n"), [(0, 10), (7, 10), (10, 10), (55, 100), (412, 800), (1, 3)])
def test_wilson_matches_statsmodels(k, n):
    low, high = stats.wilson_interval(k, n)
    ref_low, ref_high = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert low == pytest.approx(ref_low, abs=1e-12) and high == pytest.approx(ref_high, abs=1e-12)


@pytest.mark.parametrize(("k", "n"), [(0, 10), (7, 10), (5, 10), (55, 100), (412, 800), (60, 100), (3, 17)])
def test_binomial_test_matches_scipy(k, n):
    assert stats.binomial_test_two_sided(k, n) == pytest.approx(scipy_stats.binomtest(k, n, 0.5).pvalue, rel=1e-9)


def test_fleiss_kappa_matches_statsmodels():
    rng = random.Random(5)
    table = []
    for _ in range(40):
        lean = rng.random()
        counts = [0, 0]
        for _ in range(3):
            counts[0 if rng.random() < lean else 1] += 1
        table.append(counts)
    assert stats.fleiss_kappa(table) == pytest.approx(sm_fleiss_kappa(np.array(table), method="fleiss"), abs=1e-12)
    # The classic Fleiss (1971) example table.
    classic = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
               [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    assert stats.fleiss_kappa(classic) == pytest.approx(0.20993, abs=1e-5)


def test_krippendorff_alpha_ordinal_matches_krippendorff():
    rng = random.Random(11)
    units = []
    for _ in range(30):
        centre = rng.randint(1, 5)
        units.append([None if rng.random() < 0.2 else max(1, min(5, centre + rng.choice([-1, 0, 0, 1])))
                      for _ in range(4)])
    reliability = np.array([[np.nan if u[r] is None else u[r] for u in units] for r in range(4)], dtype=float)
    expected = krippendorff.alpha(reliability_data=reliability, level_of_measurement="ordinal")
    assert stats.krippendorff_alpha_ordinal(units) == pytest.approx(expected, abs=1e-9)


def test_mann_whitney_matches_scipy_with_ties():
    rng = random.Random(3)
    x = [rng.randint(1, 5) for _ in range(37)]
    y = [rng.randint(2, 5) for _ in range(29)]
    ours = stats.mann_whitney_u(x, y)
    ref = scipy_stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", use_continuity=True)
    assert ours.u == pytest.approx(ref.statistic)
    assert ours.p_value == pytest.approx(ref.pvalue, rel=1e-9)
    assert ours.rank_biserial == pytest.approx(2 * ref.statistic / (len(x) * len(y)) - 1)


def test_roc_auc_equals_normalised_u():
    rng = random.Random(8)
    labels = [rng.random() < 0.5 for _ in range(80)]
    scores = [rng.choice([-5, -3, -1, 1, 3, 5]) + (2 if label else 0) for label in labels]
    positives = [s for s, label in zip(scores, labels, strict=True) if label]
    negatives = [s for s, label in zip(scores, labels, strict=True) if not label]
    ref = scipy_stats.mannwhitneyu(positives, negatives).statistic / (len(positives) * len(negatives))
    assert stats.roc_auc(labels, scores) == pytest.approx(ref)
    assert stats.roc_auc([True, False], [1.0, 0.0]) == 1.0


def test_detection_summary():
    truth = [True] * 6 + [False] * 4
    judged = [True, True, True, False, False, True, False, False, True, False]
    summary = stats.detection_summary(truth, judged)
    assert (summary.n, summary.correct) == (10, 7)
    assert summary.sensitivity == pytest.approx(4 / 6) and summary.specificity == pytest.approx(3 / 4)
    assert summary.p_value == pytest.approx(scipy_stats.binomtest(7, 10).pvalue)
    assert summary.ci_low < 0.7 < summary.ci_high


@pytest.mark.parametrize("bad", [lambda: stats.wilson_interval(3, 0), lambda: stats.fleiss_kappa([[1, 1], [2, 1]]),
                                 lambda: stats.krippendorff_alpha_ordinal([[1, 1], [1, None]]),
                                 lambda: stats.roc_auc([True], [1.0]),
                                 lambda: stats.confidence_weighted_score(True, 6)])
def test_invalid_input_is_refused(bad):
    with pytest.raises(ValueError):
        bad()


def test_confidence_weighted_score_orders_judgements():
    scores = [stats.confidence_weighted_score(j, c) for j, c in [(False, 5), (False, 1), (True, 1), (True, 5)]]
    assert scores == sorted(scores) and not math.isclose(scores[1], scores[2])
