"""Statistics of the blind-assessment protocol, implemented here and checked in tests against
independent implementations (statsmodels, scipy, krippendorff) on fixed data.

Pure functions over plain Python sequences: no database, no plotting.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

Z_95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion (95% by default)."""
    if n <= 0:
        raise ValueError("n must be positive")
    if not 0 <= successes <= n:
        raise ValueError("successes must lie in [0, n]")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _binomial_log_pmf(k: int, n: int, p: float) -> float:
    return (math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
            + k * math.log(p) + (n - k) * math.log1p(-p))


def binomial_test_two_sided(successes: int, n: int, p: float = 0.5) -> float:
    """Exact two-sided binomial test: the probability of outcomes no more likely than the observed one."""
    if n <= 0:
        raise ValueError("n must be positive")
    if not 0 < p < 1:
        raise ValueError("p must lie strictly between 0 and 1")
    observed = _binomial_log_pmf(successes, n, p)
    tolerance = 1e-7  # relative, as scipy.stats.binomtest does, so ties in probability count as extreme
    total = 0.0
    for k in range(n + 1):
        log_pmf = _binomial_log_pmf(k, n, p)
        if log_pmf <= observed + math.log1p(tolerance):
            total += math.exp(log_pmf)
    return min(1.0, total)


def fleiss_kappa(table: Sequence[Sequence[int]]) -> float:
    """Fleiss' kappa from an items x categories table of rating counts (same number of raters per item)."""
    if not table:
        raise ValueError("empty table")
    raters = sum(table[0])
    if raters < 2 or any(sum(row) != raters for row in table):
        raise ValueError("every item needs the same number (>= 2) of ratings")
    items = len(table)
    categories = len(table[0])
    p_items = [(sum(c * c for c in row) - raters) / (raters * (raters - 1)) for row in table]
    p_bar = sum(p_items) / items
    p_cat = [sum(row[j] for row in table) / (items * raters) for j in range(categories)]
    p_expected = sum(p * p for p in p_cat)
    if p_expected == 1:
        return 1.0
    return (p_bar - p_expected) / (1 - p_expected)


def krippendorff_alpha_ordinal(units: Sequence[Sequence[float | None]]) -> float:
    """Krippendorff's alpha with the ordinal metric.

    `units` holds, per unit (note), the values its raters gave; None marks a missing rating.
    Units with fewer than two values are not pairable and are left out, as in the definition.
    """
    pairable = [[v for v in unit if v is not None] for unit in units]
    pairable = [values for values in pairable if len(values) >= 2]
    values = sorted({v for unit in pairable for v in unit})
    if len(values) < 2:
        raise ValueError("alpha needs at least two distinct values")
    index = {v: i for i, v in enumerate(values)}
    size = len(values)
    coincidence = [[0.0] * size for _ in range(size)]
    for unit in pairable:
        m = len(unit)
        counts = Counter(index[v] for v in unit)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_k - (1 if c == k else 0))
                coincidence[c][k] += pairs / (m - 1)
    marginals = [sum(row) for row in coincidence]
    n = sum(marginals)

    def delta_squared(c: int, k: int) -> float:
        low, high = min(c, k), max(c, k)
        return (sum(marginals[low:high + 1]) - (marginals[low] + marginals[high]) / 2) ** 2

    observed = sum(coincidence[c][k] * delta_squared(c, k) for c in range(size) for k in range(size))
    expected = sum(marginals[c] * marginals[k] * delta_squared(c, k) for c in range(size) for k in range(size))
    if expected == 0:
        return 1.0
    return 1 - (n - 1) * observed / expected


def _ranks(values: Sequence[float]) -> tuple[list[float], list[int]]:
    """Average ranks (1-based) and the sizes of tied groups."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    ties = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        average = (i + j) / 2 + 1
        for position in range(i, j + 1):
            ranks[order[position]] = average
        ties.append(j - i + 1)
        i = j + 1
    return ranks, ties


@dataclass(frozen=True)
class MannWhitney:
    u: float  # U of the first sample
    p_value: float  # two-sided, normal approximation with tie and continuity correction
    rank_biserial: float  # effect size in [-1, 1]; positive when the first sample tends to be larger
    common_language: float  # P(X > Y) + P(X = Y) / 2


def mann_whitney_u(x: Sequence[float], y: Sequence[float]) -> MannWhitney:
    n1, n2 = len(x), len(y)
    if n1 == 0 or n2 == 0:
        raise ValueError("both samples need values")
    ranks, ties = _ranks(list(x) + list(y))
    r1 = sum(ranks[:n1])
    u1 = r1 - n1 * (n1 + 1) / 2
    n = n1 + n2
    mean = n1 * n2 / 2
    tie_term = sum(t ** 3 - t for t in ties)
    variance = n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1)))
    if variance <= 0:
        p_value = 1.0
    else:
        z = (abs(u1 - mean) - 0.5) / math.sqrt(variance)
        p_value = min(1.0, math.erfc(max(z, 0.0) / math.sqrt(2)))
    cles = u1 / (n1 * n2)
    return MannWhitney(u=u1, p_value=p_value, rank_biserial=2 * cles - 1, common_language=cles)


def roc_auc(labels: Sequence[bool], scores: Sequence[float]) -> float:
    """Area under the ROC curve: P(score of a positive > score of a negative), ties counted half."""
    positives = [s for label, s in zip(labels, scores, strict=True) if label]
    negatives = [s for label, s in zip(labels, scores, strict=True) if not label]
    if not positives or not negatives:
        raise ValueError("AUC needs both classes")
    return mann_whitney_u(positives, negatives).common_language


@dataclass(frozen=True)
class Detection:
    n: int
    correct: int
    accuracy: float
    ci_low: float
    ci_high: float
    p_value: float  # exact binomial test against chance (50%)
    sensitivity: float | None  # synthetic notes called synthetic
    specificity: float | None  # real notes called real


def detection_summary(truth_synthetic: Sequence[bool], judged_synthetic: Sequence[bool]) -> Detection:
    pairs = list(zip(truth_synthetic, judged_synthetic, strict=True))
    n = len(pairs)
    if n == 0:
        raise ValueError("no judgements")
    correct = sum(t == j for t, j in pairs)
    synthetic = [j for t, j in pairs if t]
    real = [j for t, j in pairs if not t]
    low, high = wilson_interval(correct, n)
    return Detection(
        n=n,
        correct=correct,
        accuracy=correct / n,
        ci_low=low,
        ci_high=high,
        p_value=binomial_test_two_sided(correct, n),
        sensitivity=sum(synthetic) / len(synthetic) if synthetic else None,
        specificity=sum(not j for j in real) / len(real) if real else None,
    )


def confidence_weighted_score(judged_synthetic: bool, confidence: int, scale: int = 5) -> float:
    """Map a judgement plus confidence 1..scale onto one score: high means 'surely synthetic'."""
    if not 1 <= confidence <= scale:
        raise ValueError(f"confidence must lie in 1..{scale}")
    return confidence if judged_synthetic else -confidence

