from __future__ import annotations

from collections import Counter

import pytest

from generation.planning import (
    MAX_TASKS,
    MAX_TASKS_PER_CATEGORY,
    ExampleNote,
    PlanError,
    examples_group,
    plan_allocate,
    plan_build,
)
from graph.sampling import CategoryData, SamplingData, category_weight

SYMPTOMS = [("кашель", 9), ("насморк", 5), ("температура", 4), ("боль в горле", 2), ("слабость", 1), ("озноб", 1)]


def _data() -> SamplingData:
    return SamplingData("7", {
        "J06": CategoryData("J06", "ОРВИ", 40, 60, {"J06": SYMPTOMS}),
        "M54": CategoryData("M54", "Дорсалгия", 300, 560, {"M54.5": [("боль в пояснице", 9), ("онемение", 2)],
                                                          "M54.2": [("боль в шее", 4), ("головокружение", 1),
                                                                    ("скованность", 1)]}),
        "Z00": CategoryData("Z00", "Осмотр", 0, 15, {}),
    })


def _examples() -> dict[str, list[ExampleNote]]:
    long_text = " ".join(["слово"] * 30)
    return examples_group([(1, "J06", long_text), (2, "J06", "коротко"), (3, "M54", long_text + " спина"),
                           (4, "M54", long_text)])


def test_examples_need_the_minimum_word_count():
    grouped = _examples()
    assert [e.note_id for e in grouped["J06"]] == [1]
    assert [e.note_id for e in grouped["M54"]] == [3, 4]
    assert examples_group([(9, "J06", "a b c")], min_words=3)["J06"][0].note_id == 9


def test_same_seed_same_plan_and_another_seed_differs():
    kwargs = dict(categories=["J06", "M54"], budget=40, examples=_examples())
    first, again = plan_build(_data(), seed=17, **kwargs), plan_build(_data(), seed=17, **kwargs)
    assert first == again
    assert plan_build(_data(), seed=18, **kwargs).tasks != first.tasks


def test_weighted_allocation_follows_w_of_c():
    data = _data()
    plan = plan_build(data, categories=["J06", "M54"], budget=100, seed=1, examples=_examples())
    # N_exmp is the usable example count (J06: 1, M54: 2), not the graph's stored n_examples (40, 300)
    n_exmp = {key: len(notes) for key, notes in _examples().items()}
    weights = {key: category_weight(n_exmp[key], data.categories[key].n_symp) for key in ("J06", "M54")}
    expected = {key: round(w / sum(weights.values()) * 100) for key, w in weights.items()}
    assert {row.category: row.count for row in plan.rows} == expected
    assert Counter(task.category for task in plan.tasks) == Counter(expected)
    row = next(r for r in plan.rows if r.category == "M54")
    assert (row.n_exmp, row.n_symp) == (2, 2.5)
    assert row.weight == round(weights["M54"], 4)


def test_uniform_explicit_and_overrides():
    data = _data()
    uniform = plan_build(data, categories=["J06", "M54", "Z00"], budget=10, seed=1, examples=_examples(),
                         allocation="uniform")
    assert [row.count for row in uniform.rows] == [4, 3, 3]
    explicit = plan_build(data, categories=["J06", "Z00"], budget=0, seed=1, examples=_examples(),
                          allocation="explicit", explicit_counts={"J06": 2, "Z00": 5}, overrides={"Z00": 10})
    assert [row.count for row in explicit.rows] == [2, 10]


def test_tasks_carry_symptoms_from_one_donor_and_a_real_or_template_example():
    data = _data()
    plan = plan_build(data, categories=["M54", "Z00"], budget=0, seed=3, examples=_examples(),
                      allocation="explicit", explicit_counts={"M54": 50, "Z00": 2})
    for task in plan.tasks:
        if task.category == "M54":
            donor_symptoms = {name for name, _ in data.categories["M54"].donors[task.donor_code]}
            assert set(task.symptoms) <= donor_symptoms and 2 <= len(task.symptoms) <= 3
            assert task.example_note_id in (3, 4)
        else:
            assert task.symptoms == () and task.example_note_id is None
            assert task.example_text == "Пациент обратился с жалобами."
    assert [t.index for t in plan.tasks] == list(range(52))
    assert {t.donor_code for t in plan.tasks if t.category == "M54"} == {"M54.5", "M54.2"}


def test_a_task_keeps_its_sample_when_other_categories_change():
    one = plan_build(_data(), categories=["J06"], budget=0, seed=5, examples=_examples(), allocation="explicit",
                     explicit_counts={"J06": 3})
    two = plan_build(_data(), categories=["J06", "M54"], budget=0, seed=5, examples=_examples(),
                     allocation="explicit", explicit_counts={"J06": 3, "M54": 2})
    assert [t.symptoms for t in one.tasks] == [t.symptoms for t in two.tasks if t.category == "J06"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"categories": ["X99"], "budget": 1}, "not in the graph"),
    ({"categories": ["Z00"], "budget": 5}, "none of the chosen categories"),
    ({"categories": ["J06"], "budget": -1}, "negative"),
    ({"categories": [], "budget": 3, "examples": {}}, "no categories"),
])
def test_bad_requests_are_refused_clearly(kwargs, message):
    with pytest.raises(PlanError, match=message):
        plan_build(_data(), seed=1, **{"examples": _examples(), **kwargs})


def test_a_plan_is_bounded_per_category_and_in_total_whatever_allocation_made_the_counts():
    """planning.MAX_TASKS_PER_CATEGORY and MAX_TASKS bound the plan itself: a budget within the request's bounds
    plus overrides, or a few categories sharing a large budget, cannot make a larger plan."""
    keys = [f"J{n:02d}" for n in range(12)]
    data = SamplingData("1", {key: CategoryData(key, key, 1, 1, {key: SYMPTOMS}) for key in keys})
    examples = examples_group([(n, key, " ".join(["слово"] * 30)) for n, key in enumerate(keys)])
    with pytest.raises(PlanError, match=f"the plan has 101666 tasks; at most {MAX_TASKS} a job"):
        plan_allocate(data, categories=None, budget=MAX_TASKS, seed=1, examples=examples, allocation="uniform",
                      overrides={"J00": MAX_TASKS_PER_CATEGORY})
    with pytest.raises(PlanError, match=f"J06: 10001 tasks; at most {MAX_TASKS_PER_CATEGORY} tasks a category"):
        plan_build(data, categories=["J06"], budget=MAX_TASKS_PER_CATEGORY + 1, seed=1, examples=examples)
    assert plan_allocate(data, categories=["J06"], budget=MAX_TASKS_PER_CATEGORY, seed=1, examples=examples).total \
        == MAX_TASKS_PER_CATEGORY


def test_counts_for_categories_outside_the_plan_are_refused_not_ignored():
    with pytest.raises(PlanError, match="counts given for categories not in the plan: M54"):
        plan_build(_data(), categories=["J06"], budget=2, seed=1, examples=_examples(), overrides={"M54": 5})
    with pytest.raises(PlanError, match="counts given for categories not in the plan: X99, Z00"):
        plan_build(_data(), categories=["J06"], budget=0, seed=1, examples=_examples(), allocation="explicit",
                   explicit_counts={"J06": 1, "Z00": 2, "X99": 1})


def test_the_allocation_alone_gives_the_rows_of_the_built_plan():
    kwargs = dict(categories=["J06", "M54", "Z00"], budget=10, seed=4, examples=_examples(), allocation="uniform",
                  overrides={"Z00": 1})
    allocated, built = plan_allocate(_data(), **kwargs), plan_build(_data(), **kwargs)
    assert allocated.rows == built.rows and allocated.total == built.total == len(built.tasks) == 8
    assert allocated.tasks == ()
