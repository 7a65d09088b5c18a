"""One N_exmp per plan: w(C) and the preview both count the usable example notes the tasks sample from.

The graph's stored n_examples (counted at import) may be stale or come from another corpus; a plan must not
allocate with it while showing another count (bug 6).
"""

from __future__ import annotations

from collections import Counter

import pytest

from generation.planning import examples_group, plan_build
from graph.sampling import CategoryData, SamplingData, category_budget, j3

LONG = " ".join(["слово"] * 30)
SHORT = "коротко"


def _w(n_exmp: float, n_symp: float) -> float:
    """METHOD.md: w(C) = J3(N_exmp) * J3(N_symp), written out so the test does not lean on the code under test."""
    return j3(n_exmp) * j3(n_symp)


def _data() -> SamplingData:
    """Stored n_examples deliberately disagree with the usable examples below."""
    return SamplingData("3", {
        # the graph claims thousands of examples, but no real note of A01 is usable now
        "A01": CategoryData("A01", "Stale", 5000, 5000, {"A01": [("кашель", 3), ("насморк", 2), ("озноб", 1),
                                                                 ("слабость", 1)]}),
        # the graph claims one example, the corpus now holds twelve usable notes
        "B02": CategoryData("B02", "Grown", 1, 1, {"B02.0": [("боль", 2), ("жар", 1)],
                                                   "B02.1": [("сыпь", 1), ("зуд", 1), ("отёк", 1)]}),
        # stored and usable agree once short notes are left out
        "C03": CategoryData("C03", "Steady", 3, 6, {"C03": [("одышка", 1), ("хрипы", 1), ("кашель", 1)]}),
    })


def _examples():
    notes = [(100 + i, "B02", f"{LONG} {i}") for i in range(12)]
    notes += [(200, "C03", LONG), (201, "C03", LONG + " ещё"), (202, "C03", LONG + " и ещё"), (203, "C03", SHORT)]
    notes += [(300, "A01", SHORT), (301, "A01", "тоже коротко")]  # below min_words: not usable
    return examples_group(notes)


def test_row_weight_is_computed_from_the_displayed_n_exmp_and_n_symp():
    data, examples = _data(), _examples()
    plan = plan_build(data, categories=["A01", "B02", "C03"], budget=100, seed=17, examples=examples)
    rows = {row.category: row for row in plan.rows}
    # N_exmp shown is the usable example count, not the graph's stored n_examples
    assert {key: row.n_exmp for key, row in rows.items()} == {"A01": 0, "B02": 12, "C03": 3}
    assert {key: row.n_symp for key, row in rows.items()} == {"A01": 4.0, "B02": 2.5, "C03": 3.0}
    for row in plan.rows:
        assert row.weight == round(_w(row.n_exmp, row.n_symp), 4), row.category
    assert rows["A01"].weight == 0.0


def test_allocation_follows_the_displayed_weights():
    data, examples = _data(), _examples()
    plan = plan_build(data, categories=["A01", "B02", "C03"], budget=100, seed=17, examples=examples)
    weights = {row.category: _w(row.n_exmp, row.n_symp) for row in plan.rows}
    expected = {key: round(w / sum(weights.values()) * 100) for key, w in weights.items()}
    assert {row.category: row.count for row in plan.rows} == expected
    assert Counter(task.category for task in plan.tasks) == Counter({k: v for k, v in expected.items() if v})
    # the stale stored count no longer wins the largest share: A01 has nothing to sample from
    counts = {row.category: row.count for row in plan.rows}
    assert counts["A01"] == 0 and counts["B02"] == max(counts.values()) and counts["C03"] > 0
    # every task of a category with usable examples carries one of them
    usable = {key: {e.note_id for e in notes} for key, notes in examples.items()}
    assert all(task.example_note_id in usable[task.category] for task in plan.tasks)


def test_min_words_changes_n_exmp_and_the_weight_together():
    data = _data()
    strict = examples_group([(1, "C03", LONG), (2, "C03", "пять слов в этой заметке")], min_words=30)
    loose = examples_group([(1, "C03", LONG), (2, "C03", "пять слов в этой заметке")], min_words=5)
    rows = [plan_build(data, categories=["C03"], budget=4, seed=1, examples=ex).rows[0] for ex in (strict, loose)]
    assert [row.n_exmp for row in rows] == [1, 2]
    assert [row.weight for row in rows] == [round(_w(1, 3.0), 4), round(_w(2, 3.0), 4)]


def test_graph_statistics_keep_the_graph_stored_count():
    rows = {row.key: row for row in category_budget(_data(), 100)}
    assert rows["A01"].n_exmp == 5000 and rows["A01"].weight == pytest.approx(_w(5000, 4.0), abs=1e-4)
