"""Sampling per METHOD.md: seeded, 2-5 symptoms, uniform (or weighted) within tolerance, w(C) and budgets."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from graph.sampling import (
    CategoryData,
    SamplingData,
    category_budget,
    category_weight,
    j3,
    sampling_data_load,
    symptoms_sample,
)

SYMPTOMS = [(f"s{i}", 10 * (i + 1)) for i in range(10)]  # s9 is ten times as frequent as s0
DATA = SamplingData("1", {
    "J06": CategoryData("J06", "URI", n_examples=10, n_notes=40, donors={"J06": SYMPTOMS}),
    "I10": CategoryData("I10", "Hypertension", n_examples=100, n_notes=500,
                        donors={"I10.0": SYMPTOMS[:4], "I10.1": SYMPTOMS[4:]}),
    "A00": CategoryData("A00", "Cholera", n_examples=0, n_notes=0, donors={"A00": SYMPTOMS[:1]}),
    "Z00": CategoryData("Z00", "Examination", n_examples=5, n_notes=5, donors={}),
})


def test_same_seed_same_sample_and_different_seeds_differ():
    assert symptoms_sample(DATA, "J06", seed=17) == symptoms_sample(DATA, "J06", seed=17)
    assert len({tuple(symptoms_sample(DATA, "J06", seed=s)[1]) for s in range(20)}) > 10


def test_two_to_five_distinct_symptoms_of_one_donor():
    rng = random.Random(17)
    sizes = Counter()
    for _ in range(2000):
        donor, symptoms = symptoms_sample(DATA, "I10", seed=rng)
        assert donor in {"I10.0", "I10.1"}
        assert set(symptoms) <= {name for name, _ in DATA.categories["I10"].donors[donor]}
        assert len(set(symptoms)) == len(symptoms)
        sizes[len(symptoms)] += 1
    # n = min(len, U{2..5}); I10.0 has only 4 symptoms, so 5 comes from I10.1 alone (half the draws)
    expected = {2: 0.25, 3: 0.25, 4: 0.25 + 0.125, 5: 0.125}
    for n, share in expected.items():
        assert abs(sizes[n] / 2000 - share) < 0.04


def test_fewer_symptoms_than_two_and_no_symptoms():
    assert symptoms_sample(DATA, "A00", seed=1) == ("A00", ["s0"])
    assert symptoms_sample(DATA, "Z00", seed=1) == (None, [])
    assert symptoms_sample(DATA, "X99", seed=1) == (None, [])


def test_uniform_mode_picks_every_symptom_equally_often():
    rng = random.Random(3)
    seen, total = Counter(), 0
    for _ in range(5000):
        _, symptoms = symptoms_sample(DATA, "J06", seed=rng)
        seen.update(symptoms)
        total += len(symptoms)
    for name, _ in SYMPTOMS:
        assert abs(seen[name] / total - 0.1) < 0.015


def test_weighted_mode_prefers_frequent_symptoms():
    rng = random.Random(5)
    seen = Counter()
    for _ in range(5000):
        seen.update(symptoms_sample(DATA, "J06", seed=rng, weighted=True)[1])
    assert seen["s9"] > 3 * seen["s0"]
    flat = Counter()
    for _ in range(5000):
        flat.update(symptoms_sample(DATA, "J06", seed=rng, weighted=True, temperature=1000)[1])
    assert flat["s9"] < 1.3 * flat["s0"]


def test_j3_reference_values_and_weight():
    assert [round(j3(x), 3) for x in (1, 10, 100, 1000)] == [0.423, 0.799, 1.003, 1.121]
    assert DATA.categories["I10"].n_symp == 5.0
    assert category_weight(10, DATA.categories["J06"].n_symp) == pytest.approx(j3(10) * j3(10))
    assert category_weight(5, DATA.categories["Z00"].n_symp) == 0.0
    assert category_weight(0, 5.0) == 0.0


def test_budget_follows_weights_and_forced_counts():
    rows = {row.key: row for row in category_budget(DATA, 1000, forced={"Z00": 10})}
    assert rows["Z00"].tasks == 10
    assert rows["I10"].tasks > rows["J06"].tasks > 0 and rows["A00"].tasks == 0
    assert sum(row.share for row in rows.values()) == pytest.approx(1.0)


@pytest.mark.django_db
def test_data_loaded_from_the_graph(small_graph, graph_store):
    data = sampling_data_load(graph_store)
    assert len(data.categories) == 105 and data.version == str(small_graph.version.pk)
    j06 = data.categories["J06"]
    assert j06.donors and list(j06.donors) == ["J06"] and j06.n_notes > 50
    donor, symptoms = symptoms_sample(data, "J06", seed=17)
    assert donor == "J06" and 2 <= len(symptoms) <= 5
    # a curated symptom on a full code makes that code the donor for its category
    graph_store.run("MATCH (c:Code {key: 'J06.9'}), (s:Symptom {key: 'кашель'}) "
                    "CREATE (c)-[:HAS_SYMPTOM {count: 1, source: 'curated'}]->(s)")
    assert list(sampling_data_load(graph_store).categories["J06"].donors) == ["J06.9"]


@pytest.mark.django_db
def test_a_symptom_without_a_name_or_count_is_sampled_by_its_key(graph_store):
    """The generic format lets a symptom node lack a name and a HAS_SYMPTOM edge lack a count: the statistics page
    and generation read the key and weight 1 instead of failing on None."""
    graph_store.run("CREATE (c:Category {key: 'J06', name: 'URI'}), "
                    "(c)-[:HAS_SYMPTOM {source: 'curated'}]->(:Symptom {key: 'осиплость'}), "
                    "(c)-[:HAS_SYMPTOM {source: 'other', count: 2}]->(:Symptom {key: 'кашель', name: 'кашель'})")
    data = sampling_data_load(graph_store)
    assert data.categories["J06"].donors == {"J06": [("кашель", 2), ("осиплость", 1)]}
    assert [row.key for row in category_budget(data)] == ["J06"]
