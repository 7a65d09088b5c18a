"""The utility evaluation on small real scikit-learn runs: the real-only cell is the plain scikit-learn fit,
informative synthetic notes lift their code, overlap with the evaluation set is refused or left out, runs repeat."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.svm import LinearSVC

from review.utility.datasets import LabelledNote, NoteSet
from review.utility.evaluation import (
    GRIDS,
    OUT_OF_TRAINING,
    REAL_ONLY,
    UPSAMPLING,
    CellPlan,
    TrainingPool,
    UtilityPlan,
    cells_plan,
    code_lifts,
    utility_evaluate,
    utility_table,
)
from review.utility.overlap import (
    EXACT,
    MEMORISED,
    NEAR,
    OverlapRefused,
    OverlapThresholds,
    overlap_check,
    overlap_find,
)
from tests.review.utility.conftest import CODES

QUICK = {"grid": "quick", "seeds": (0,), "bootstrap": 200}
WITH_SYNTHETIC = "real=1 synthetic=1"


def test_fixture_sets_do_not_overlap(real_set, evaluation_set, synthetic_set):
    assert overlap_find(real_set.notes, evaluation_set.notes) == ({}, set())
    report = overlap_check(real=real_set.notes, synthetic=synthetic_set.notes, evaluation=evaluation_set.notes)
    assert (report.evaluation_overlapped, report.real_excluded, report.synthetic_excluded) == (0, {}, {})


def hand_fit(classifier: str, texts: list[str], labels: list[str], evaluation: list[str]):
    """The plain scikit-learn fit of each classifier, written out: (classes, decision values on evaluation)."""
    if classifier == "tfidf-lr":
        vectorizer = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 8))
        training, scored = vectorizer.fit_transform(texts), vectorizer.transform(evaluation)
        model = LogisticRegression(C=10, max_iter=2000, solver="sag", tol=1e-3, random_state=0)
    else:
        vectorizers = [TfidfVectorizer(analyzer="char_wb", ngram_range=(1, 5), sublinear_tf=True),
                       TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True)]
        training = sp.hstack([vectorizer.fit_transform(texts) for vectorizer in vectorizers]).tocsr()
        scored = sp.hstack([vectorizer.transform(evaluation) for vectorizer in vectorizers]).tocsr()
        model = LinearSVC(C=0.3, random_state=0)
    model.fit(training, labels)
    return model.classes_, model.decision_function(scored)


@pytest.mark.parametrize("classifier", ["tfidf-lr", "tfidf-svm"])
def test_real_only_cell_is_the_plain_scikit_learn_fit(classifier, real_set, evaluation_set, synthetic_set):
    result = utility_evaluate(real=real_set, evaluation=evaluation_set, synthetic=synthetic_set,
                              plan=UtilityPlan(classifier=classifier, **QUICK))
    classes, decision = hand_fit(classifier, [note.text for note in real_set.notes],
                                 [note.code for note in real_set.notes], [note.text for note in evaluation_set.notes])
    truth = np.array([note.code for note in evaluation_set.notes])
    order = np.argsort(-decision, axis=1, kind="stable")
    predicted = classes[order[:, 0]]
    top = classes[order]
    metrics = result.cell(REAL_ONLY).metrics["all"]
    assert metrics["accuracy"]["value"] == pytest.approx(np.mean(predicted == truth))
    for k in (3, 5):
        hits = [code in row[:k] for code, row in zip(truth, top, strict=True)]
        assert metrics[f"hit{k}"]["value"] == pytest.approx(np.mean(hits))
    assert metrics["macro_f1"]["value"] == pytest.approx(f1_score(truth, predicted, average="macro"))
    assert metrics["accuracy"]["delta"] is None  # the real-only cell is the baseline itself
    per_code = {row["code"]: row["cells"][REAL_ONLY]["accuracy"] for row in result.per_code}
    for code in CODES:
        assert per_code[code] == pytest.approx(np.mean(predicted[truth == code] == code))


def test_informative_synthetic_notes_lift_the_code_they_teach(real_set, evaluation_set, synthetic_set):
    result = utility_evaluate(real=real_set, evaluation=evaluation_set, synthetic=synthetic_set,
                              plan=UtilityPlan(held_out_codes=("G43",), **QUICK))
    g43 = next(row for row in result.per_code if row["code"] == "G43")
    assert (g43["real"], g43["synthetic"], g43["evaluation"]) == (1, 10, 4)
    assert g43["cells"][REAL_ONLY]["accuracy"] <= 0.25
    for cell in (WITH_SYNTHETIC, UPSAMPLING, OUT_OF_TRAINING):
        assert g43["cells"][cell]["accuracy"] >= 0.75, cell
    overall = result.cell(WITH_SYNTHETIC).metrics["all"]["accuracy"]
    assert overall["delta"] > 0
    # rarest decile: G43 alone (one real note); it is also the hardest code for the real-only cell
    assert result.subsets["rarest"] == ["G43"] and result.subsets["hardest"] == ["G43"]
    assert result.cell(UPSAMPLING).metrics["rarest"]["accuracy"]["delta"] >= 0.5
    assert result.subsets["held_out"] == ["G43"]
    held_out = result.cell(OUT_OF_TRAINING)
    assert held_out.training == [{"seed": 0, "real": 32, "synthetic": 10}]  # G43's real note out, its synthetic in
    assert held_out.metrics["held_out"]["accuracy"]["delta"] >= 0.5
    # every code has fewer than 50 real notes: all their synthetic notes are added
    assert result.cell(UPSAMPLING).training == [{"seed": 0, "real": 33, "synthetic": 22}]
    lifts = code_lifts(result, WITH_SYNTHETIC)
    assert lifts[0]["code"] == "G43" and lifts[0]["lift"] == lifts[0]["value"] - lifts[0]["baseline"] >= 0.5
    assert [row["code"] for row in lifts] == [row["code"] for row in sorted(lifts, key=lambda row: -row["lift"])]
    table = utility_table(result)
    assert "real 100%" in table and "upsampling" in table and "rarest codes (1)" in table


def test_paper_grid_cells_subsample_each_code_nested_and_by_seed(real_set, evaluation_set, synthetic_set):
    result = utility_evaluate(real=real_set, evaluation=evaluation_set, synthetic=synthetic_set,
                              plan=UtilityPlan(grid="paper", seeds=(0, 1), bootstrap=200))
    assert [cell.key for cell in result.cells][:4] == ["real=0.5 synthetic=0", "real=0.5 synthetic=0.25",
                                                       "real=0.5 synthetic=0.5", "real=0.5 synthetic=1"]
    assert len(result.cells) == 12 + 3 and result.inputs["seeds"] == [0, 1]
    # per code: 8 real notes -> 4 at 50 %, 6 at 75 %; G43's single note is kept; synthetic 3 -> 1 at 25 % (at least
    # one), 2 at 50 %; G43's 10 -> 3 (2.5 rounded half up) and 5
    assert result.cell("real=0.5 synthetic=0").training[0] == {"seed": 0, "real": 4 * 4 + 1, "synthetic": 0}
    assert result.cell("real=0.75 synthetic=0.25").training[1] == {"seed": 1, "real": 4 * 6 + 1,
                                                                    "synthetic": 4 * 1 + 3}
    assert result.cell("real=1 synthetic=0.5").training[0] == {"seed": 0, "real": 33, "synthetic": 4 * 2 + 5}
    assert result.cell("synthetic_only").training[0] == {"seed": 0, "real": 0, "synthetic": 22}
    assert result.cell("real=0.5 synthetic=1").baseline == "real=0.5 synthetic=0"
    assert result.timings["fits"] == 3 * 1 + 8 * 2 + 1 * 2 + 2  # seed-free cells are fitted once


def test_training_pool_subsets_are_nested_and_seeded():
    labels = np.repeat(np.arange(3), [9, 5, 1])
    labels = np.concatenate([labels, np.repeat(np.arange(3), 4)])
    synthetic = np.arange(len(labels)) >= 15
    pool = TrainingPool(labels, synthetic, upsample_to=6, held_out=np.array([1]))

    def rows(real: float, extra: float, seed: int, kind: str = "grid") -> set[int]:
        return set(pool.rows(CellPlan("cell", kind, real, extra, None), seed).tolist())

    half, most, everything = rows(0.5, 0, 0), rows(0.75, 0, 0), rows(1, 0, 0)
    assert half < most < everything == set(range(15))
    assert sorted(np.bincount(labels[sorted(half)], minlength=3).tolist()) == [1, 3, 5]  # 4.5 -> 5, 2.5 -> 3, 1
    assert rows(0.5, 0, 0) == half and rows(0.5, 0, 1) != half
    assert rows(1, 0.5, 0) - everything == rows(0.5, 0.5, 0) - half  # the same synthetic notes whatever the real
    upsampled = rows(1, 0, 0, UPSAMPLING) - everything
    assert np.bincount(labels[sorted(upsampled)], minlength=3).tolist() == [0, 1, 4]  # up to 6 where synthetic allows
    out = rows(1, 0, 0, OUT_OF_TRAINING)
    assert {int(labels[row]) for row in out if row < 15} == {0, 2} and out - everything == {
        row for row in range(15, 27) if labels[row] == 1}


def test_overlap_above_the_threshold_is_refused_and_below_it_left_out(real_set, evaluation_set, synthetic_set):
    long_note = ("Жалобы на кашель с мокротой, насморк, боль в горле, заложенность носа, температуру до 38, "
                 "першение в горле, чихание, ломоту в теле и слабость третий день, осиплость голоса к вечеру, "
                 "слезотечение и озноб по вечерам после работы на холоде")
    evaluation = NoteSet(name="evaluation", notes=(*evaluation_set.notes,
                                                   LabelledNote("evaluation:long", long_note + ".", "J06")))
    leaked = (*real_set.notes, LabelledNote("real:copy", evaluation.notes[0].text, evaluation.notes[0].code),
              LabelledNote("real:edited", long_note + " ночью.", "J06"))
    real = NoteSet(name="real", notes=leaked)
    with pytest.raises(OverlapRefused) as refused:
        utility_evaluate(real=real, evaluation=evaluation, synthetic=synthetic_set, plan=UtilityPlan(**QUICK))
    report = refused.value.report
    assert report.evaluation_overlapped == 2 and report.real_excluded == {33: EXACT, 34: NEAR}
    assert "2 of 21 evaluation notes" in refused.value.messages[0]
    allowed = UtilityPlan(overlap=OverlapThresholds(max_share=0.1), **QUICK)
    result = utility_evaluate(real=real, evaluation=evaluation, synthetic=synthetic_set, plan=allowed)
    assert result.overlap["real"] | {"keys": None} == {"notes": 35, "excluded": 2, EXACT: 1, NEAR: 1, MEMORISED: 0,
                                                       "keys": None}
    assert result.overlap["real"]["keys"] == ["real:copy", "real:edited"]
    assert result.pool["real"] == 33 and result.cell(REAL_ONLY).training[0]["real"] == 33


def test_synthetic_notes_that_copy_or_memorised_an_evaluation_note_are_left_out(real_set, evaluation_set,
                                                                                synthetic_set):
    source = ("Жалобы на пульсирующую боль в половине головы, светобоязнь и звукобоязнь, рвоту на высоте "
              "приступа, зрительную ауру перед ним")
    evaluation = NoteSet(name="evaluation", notes=(*evaluation_set.notes, LabelledNote("evaluation:long", source,
                                                                                         "G43")))
    memorised = f"Пациентка 34 лет. {source}, беспокоит около года, к врачу раньше не обращалась, лечилась сама."
    synthetic = NoteSet(name="synthetic", notes=(
        *synthetic_set.notes, LabelledNote("synthetic:copy", evaluation_set.notes[0].text, "G43"),
        LabelledNote("synthetic:memorised", memorised, "G43")))
    result = utility_evaluate(real=real_set, evaluation=evaluation, synthetic=synthetic, plan=UtilityPlan(**QUICK))
    assert result.overlap["synthetic"] | {"keys": None} == {"notes": 24, "excluded": 2, EXACT: 1, NEAR: 0,
                                                            MEMORISED: 1, "keys": None}
    assert result.overlap["synthetic"]["keys"] == ["synthetic:copy", "synthetic:memorised"]
    assert result.overlap["evaluation_overlapped"] == 0  # synthetic overlap is left out, never refused
    assert result.pool["synthetic"] == 22 and result.cell("synthetic_only").training[0]["synthetic"] == 22


def test_runs_repeat_exactly_with_the_same_seeds(real_set, evaluation_set, synthetic_set):
    plan = UtilityPlan(grid="paper", seeds=(3, 4), bootstrap=200)
    first, second = (utility_evaluate(real=real_set, evaluation=evaluation_set, synthetic=synthetic_set, plan=plan)
                     .as_json() for _run in range(2))
    first.pop("timings"), second.pop("timings")
    assert first == second
    other = utility_evaluate(real=real_set, evaluation=evaluation_set, synthetic=synthetic_set,
                             plan=UtilityPlan(grid="paper", seeds=(5, 6), bootstrap=200)).as_json()
    assert other["inputs"]["seeds"] == [5, 6] and other["inputs"]["held_out_codes"] != [] and other != first


def test_worker_processes_give_the_same_results(real_set, evaluation_set, synthetic_set):
    plan = UtilityPlan(grid="paper", seeds=(0, 1), bootstrap=200, classifier="tfidf-svm")
    alone, shared = (utility_evaluate(real=real_set, evaluation=evaluation_set, synthetic=synthetic_set,
                                      plan=replace(plan, jobs=jobs)).as_json() for jobs in (1, 2))
    for result in (alone, shared):
        result.pop("timings"), result["inputs"].pop("jobs")
    assert alone == shared


def test_result_json_names_the_exact_inputs(real_set, evaluation_set, synthetic_set, tmp_path):
    result = utility_evaluate(real=real_set, evaluation=evaluation_set, synthetic=synthetic_set,
                              plan=UtilityPlan(**QUICK))
    path = tmp_path / "utility.json"
    result.json_write(path)
    written = json.loads(path.read_text(encoding="utf-8"))
    inputs = written["inputs"]
    assert inputs["evaluation"]["sha256"] == evaluation_set.sha256 and inputs["evaluation"]["notes"] == 20
    assert inputs["real"]["sha256"] == real_set.sha256 and inputs["synthetic"]["notes"] == 22
    classifier = inputs["classifier"]
    assert classifier["name"] == "tfidf-lr" and classifier["estimator"] == "LogisticRegression"
    assert classifier["features"][0] | {"analyzer": "char_wb", "ngram_range": [3, 8]} == classifier["features"][0]
    assert {key: classifier["estimator_params"][key] for key in ("C", "max_iter", "solver", "tol")} == {
        "C": 10.0, "max_iter": 2000, "solver": "sag", "tol": 0.001}
    assert inputs["grid"]["name"] == "quick" and inputs["bootstrap"] == 200 and inputs["seeds"] == [0]
    assert inputs["overlap"]["max_share"] == 0.01 and "scikit-learn" in inputs["versions"]
    assert [cell["key"] for cell in written["cells"]] == inputs["grid"]["cells"]
    assert {row["chapter"] for row in written["per_chapter"]} == {"X", "XIII", "IX", "XI", "VI"}


def test_without_synthetic_notes_only_the_real_cells_run(real_set, evaluation_set):
    result = utility_evaluate(real=real_set, evaluation=evaluation_set,
                              plan=UtilityPlan(grid="paper", seeds=(0,), bootstrap=200))
    assert [cell.key for cell in result.cells] == ["real=0.5 synthetic=0", "real=0.75 synthetic=0", REAL_ONLY]
    assert result.inputs["synthetic"] is None and "held_out" not in result.subsets
    assert cells_plan(GRIDS["quick"], synthetic=False) == [CellPlan(REAL_ONLY, "grid", 1.0, 0.0, None)]
