"""How much a study pool's texts still tell a note's origin: a simple classifier's cross-validated accuracy on three
views of the same notes, computed when the pool is built (services.do_build_study_pool).

- raw: the stored texts, as the generator or the corpus left them;
- normalised: what raters see (blinding.rater_text);
- content: the normalised text lower-cased with punctuation, case and formatting gone (its word and number tokens
  in order). Real and synthetic notes may differ in what they say; this is what that alone gives away. Numbers are
  kept (unlike core.text.words) because they are content and are in the normalised view too.

The normaliser does its job when "normalised" is no better than "content" plus MARGIN: whatever is left for a rater
to tell the origin by is in what the notes say, not how they are written. Classifier: character 1-3-gram TF-IDF
(case kept; its vocabulary and weights are fitted once on all the texts of the view, which sees no label) and
logistic regression, stratified FOLDS-fold cross-validation shuffled with the pool's seed. A pool with fewer than
MIN_PER_ORIGIN notes of either origin is not measured, and a large pool is measured on a seeded sample of at most
MAX_PER_ORIGIN notes of each origin, so that building a pool stays fast (about a second for a few hundred notes).
"""

from __future__ import annotations

import random
import re

FOLDS = 5
MIN_PER_ORIGIN = 10
MAX_PER_ORIGIN = 300
NGRAMS = (1, 3)
MAX_FEATURES = 20000
MARGIN = 0.03
_TOKEN = re.compile(r"[^\W_]+")


def content_view(text: str) -> str:
    """The note's words and numbers, lower-cased (ё read as е), with everything else gone."""
    return " ".join(_TOKEN.findall(text.lower().replace("ё", "е")))


def _accuracy(texts: list[str], labels: list[bool], seed: int) -> float:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    features = TfidfVectorizer(analyzer="char", ngram_range=NGRAMS, lowercase=False, sublinear_tf=True,
                               max_features=MAX_FEATURES).fit_transform(texts)
    folds = StratifiedKFold(n_splits=FOLDS, shuffle=True, random_state=seed)
    scores = cross_val_score(LogisticRegression(solver="liblinear"), features, labels, cv=folds, scoring="accuracy")
    return round(float(scores.mean()), 4)


def _sample(indices: list[int], seed: int) -> list[int]:
    return indices if len(indices) <= MAX_PER_ORIGIN else sorted(random.Random(seed).sample(indices, MAX_PER_ORIGIN))


def origin_probe(raw: list[str], normalised: list[str], is_synthetic: list[bool], *, seed: int) -> dict:
    """The three accuracies with n, or why they were not measured ("skipped"), JSON-ready for Study.blinding_report."""
    synthetic = [i for i, flag in enumerate(is_synthetic) if flag]
    real = [i for i, flag in enumerate(is_synthetic) if not flag]
    report: dict = {"n_real": len(real), "n_synthetic": len(synthetic), "folds": FOLDS, "seed": seed,
                    "margin": MARGIN, "min_per_origin": MIN_PER_ORIGIN}
    if min(len(real), len(synthetic)) < MIN_PER_ORIGIN:
        return {**report, "skipped": "too_small"}
    chosen = sorted(_sample(real, seed) + _sample(synthetic, seed))
    labels = [is_synthetic[i] for i in chosen]
    views = {"raw": [raw[i] for i in chosen], "normalised": [normalised[i] for i in chosen],
             "content": [content_view(normalised[i]) for i in chosen]}
    report.update({name: _accuracy(texts, labels, seed) for name, texts in views.items()})
    report.update(n=len(chosen), warning=report["normalised"] > report["content"] + MARGIN)
    return report
