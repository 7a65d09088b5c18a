"""Sampling for generation (docs METHOD.md): pure functions over SamplingData read once.

Symptoms hang on 3-character categories (RuMedTop3 labels notes that way). The "symptom donor" of a
category is a full code under it that has symptoms of its own; when none has (the seed graph), the
category itself is the only donor. N_symp(C) is the mean number of unique symptoms per donor.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from .schema import VERSION_LABEL
from .store import GraphStore

MIN_SYMPTOMS, MAX_SYMPTOMS = 2, 5


@dataclass(frozen=True)
class CategoryData:
    key: str
    name: str
    # Stored on the graph's category node at import: that import's real notes of C with >= 30 words. A generation
    # plan does not use it; it counts the usable example notes it actually samples from (generation.planning).
    n_examples: int
    n_notes: int
    # donor code -> [(symptom name, weight)], weight = the largest count over the edge sources
    donors: dict[str, list[tuple[str, int]]] = field(default_factory=dict)

    @property
    def n_symp(self) -> float:
        if not self.donors:
            return 0.0
        return sum(len(symptoms) for symptoms in self.donors.values()) / len(self.donors)


@dataclass(frozen=True)
class SamplingData:
    version: str | None
    categories: dict[str, CategoryData]


def sampling_data_load(store: GraphStore) -> SamplingData:
    """Read everything sampling needs in three queries."""
    own = store.run(
        "MATCH (c:Category)-[e:HAS_SYMPTOM]->(s:Symptom) "
        "RETURN c.key AS category, c.key AS donor, coalesce(s.name, s.key) AS symptom, max(e.count) AS weight")
    under = store.run(
        "MATCH (c:Category)<-[:CHILD_OF*1..3]-(d:Code)-[e:HAS_SYMPTOM]->(s:Symptom) "
        "RETURN c.key AS category, d.key AS donor, coalesce(s.name, s.key) AS symptom, max(e.count) AS weight")
    info = store.run(
        "MATCH (c:Category) WHERE c.n_notes > 0 OR (c)-[:HAS_SYMPTOM]->(:Symptom) "
        "RETURN c.key AS key, coalesce(c.name, c.key) AS name, coalesce(c.n_examples, 0) AS n_examples, "
        "coalesce(c.n_notes, 0) AS n_notes")
    extra = store.run("MATCH (c:Category)<-[:CHILD_OF*1..3]-(:Code)-[:HAS_SYMPTOM]->(:Symptom) "
                      "RETURN DISTINCT c.key AS key, coalesce(c.name, c.key) AS name, "
                      "coalesce(c.n_examples, 0) AS n_examples, coalesce(c.n_notes, 0) AS n_notes")
    versions = store.run(f"MATCH (v:{VERSION_LABEL}) RETURN v.key AS key ORDER BY toInteger(v.key) DESC LIMIT 1")
    by_code: dict[str, dict[str, list[tuple[str, int]]]] = {}
    code_donors = {row["category"] for row in under}
    for row in under + [row for row in own if row["category"] not in code_donors]:
        donor = by_code.setdefault(row["category"], {}).setdefault(row["donor"], [])
        donor.append((row["symptom"], row["weight"] or 1))
    categories = {}
    for row in info + extra:
        donors = {d: sorted(s, key=lambda item: (-item[1], item[0])) for d, s in by_code.get(row["key"], {}).items()}
        categories[row["key"]] = CategoryData(row["key"], row["name"], row["n_examples"], row["n_notes"], donors)
    return SamplingData(versions[0]["key"] if versions else None, categories)


def symptoms_sample(data: SamplingData, category: str, *, seed: int | random.Random,
                    weighted: bool = False, temperature: float = 1.0) -> tuple[str | None, list[str]]:
    """(donor code, 2-5 symptoms). Uniform per METHOD.md, or weighted by count**(1/temperature)."""
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
    entry = data.categories.get(category)
    if entry is None or not entry.donors:
        return None, []
    donor = rng.choice(sorted(entry.donors))
    symptoms = entry.donors[donor]
    n = min(len(symptoms), rng.randint(MIN_SYMPTOMS, MAX_SYMPTOMS))
    if not weighted:
        chosen = rng.sample([name for name, _ in symptoms], n)
    else:
        pool = [(name, float(weight) ** (1.0 / temperature)) for name, weight in symptoms]
        chosen = []
        for _ in range(n):
            pick = rng.choices(range(len(pool)), weights=[w for _, w in pool])[0]
            chosen.append(pool.pop(pick)[0])
    rng.shuffle(chosen)
    return donor, chosen


def j3(x: float) -> float:
    """J applied three times, J(x) = log(1 + x)."""
    for _ in range(3):
        x = math.log1p(x)
    return x


def category_weight(n_exmp: float, n_symp: float) -> float:
    """w(C) = J3(N_exmp(C)) * J3(N_symp(C)) (METHOD.md).

    The caller passes the counts, so the weight is always computed from the N_exmp it shows: a generation plan
    passes the usable example notes it samples from, the graph statistics the count stored on the graph.
    """
    return j3(n_exmp) * j3(n_symp)


@dataclass(frozen=True)
class CategoryBudgetRow:
    """One category of the graph statistics; n_exmp is the graph's stored CategoryData.n_examples."""

    key: str
    name: str
    n_symp: float
    n_exmp: int
    n_notes: int
    weight: float
    share: float
    tasks: int


def category_budget(data: SamplingData, budget: int = 0, *, forced: dict[str, int] | None = None
                    ) -> list[CategoryBudgetRow]:
    """Per-category N_symp, N_exmp, w(C), p(C) and n(C) = round(p(C) * budget); forced overrides n(C).

    From the graph alone: N_exmp is the count stored on the category node at import (real notes with >= 30
    words then), not the notes a generation plan finds usable now; plans use generation.planning.plan_build.
    """
    forced = forced or {}
    weights = {key: category_weight(entry.n_examples, entry.n_symp) for key, entry in data.categories.items()}
    total = sum(weights.values()) or 1.0
    rows = []
    for key in sorted(data.categories):
        entry = data.categories[key]
        share = weights[key] / total
        tasks = forced.get(key, round(share * budget))
        rows.append(CategoryBudgetRow(key, entry.name, round(entry.n_symp, 2), entry.n_examples, entry.n_notes,
                                      round(weights[key], 4), share, tasks))
    return rows
