"""Generation plans: which categories get how many tasks, and per task the sampled symptoms and example.

Pure functions over graph.sampling.SamplingData and a mapping of example notes, so the same inputs and
seed always give the same plan (each task draws from its own RNG seeded by (seed, category, index),
which keeps a task's sample stable when other categories are added or removed).
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from django.core.exceptions import ValidationError
from django.utils.translation import gettext as _

from graph.sampling import SamplingData, category_weight, symptoms_sample

Allocation = Literal["weighted", "uniform", "explicit"]
SymptomMode = Literal["uniform", "weighted"]
DEFAULT_MIN_WORDS = 30
# The bounds of a plan, the one home of them (the job form and the API refuse more through jobs.plan_request_from):
# a job's tasks all together, and one category's. A job's items are built by its worker (jobs.job_items_build), and
# a request only allocates the budget (plan_allocate), so the request's work does not grow with these.
MAX_TASKS = 100_000
MAX_TASKS_PER_CATEGORY = 10_000
# METHOD.md: a category without a usable example note gets a neutral template instead.
TEMPLATE_EXAMPLES = {"ru": "Пациент обратился с жалобами.", "en": "The patient presented with complaints."}


class PlanError(ValidationError):
    """The plan request cannot be satisfied (invalid input: API 400, a message on the form); the message says why."""


@dataclass(frozen=True)
class ExampleNote:
    note_id: int
    text: str


@dataclass(frozen=True)
class PlanTask:
    index: int
    category: str
    donor_code: str | None
    symptoms: tuple[str, ...]
    example_note_id: int | None  # None: the neutral template stands in
    example_text: str


@dataclass(frozen=True)
class PlanRow:
    """One category of a plan. n_exmp is N_exmp(C) for this plan: the usable example notes of the category the
    tasks sample from (the examples passed to plan_build, real notes with at least min_words words), and
    weight = w(C) computed from exactly this n_exmp and n_symp, so the preview shows what the allocation used."""

    category: str
    name: str
    count: int
    weight: float
    n_exmp: int
    n_symp: float


@dataclass(frozen=True)
class Plan:
    """rows: the allocation (a preview shows them); tasks: sampled by plan_build only (plan_allocate leaves none)."""

    seed: int
    graph_version: str | None
    allocation: Allocation
    symptom_mode: SymptomMode
    rows: tuple[PlanRow, ...]
    tasks: tuple[PlanTask, ...] = field(default=(), repr=False)

    @property
    def total(self) -> int:
        return sum(row.count for row in self.rows)


def word_count(text: str) -> int:
    return len(text.split())


def examples_group(notes: Iterable[tuple[int, str, str]], *, min_words: int = DEFAULT_MIN_WORDS
                   ) -> dict[str, list[ExampleNote]]:
    """(note id, category, text) rows -> usable examples per category (at least min_words words)."""
    grouped: dict[str, list[ExampleNote]] = {}
    for note_id, category, text in notes:
        if word_count(text) >= min_words:
            grouped.setdefault(category, []).append(ExampleNote(note_id, text))
    for examples in grouped.values():
        examples.sort(key=lambda example: example.note_id)
    return grouped


def _counts(weights: dict[str, float], categories: list[str], budget: int, allocation: Allocation,
            explicit: dict[str, int], overrides: dict[str, int]) -> dict[str, int]:
    if allocation == "explicit":
        counts = {key: explicit.get(key, 0) for key in categories}
    elif allocation == "uniform":
        base, remainder = divmod(budget, len(categories))
        # The remainder goes to the first categories in code order: deterministic and documented.
        counts = {key: base + (1 if i < remainder else 0) for i, key in enumerate(categories)}
    else:
        total = sum(weights[key] for key in categories)
        if total == 0:
            raise PlanError(_("none of the chosen categories has both example notes and symptoms; "
                              "use uniform or explicit allocation"))
        counts = {key: round(weights[key] / total * budget) for key in categories}
    if outside := sorted((set(explicit) | set(overrides)) - set(categories)):
        raise PlanError(_("counts given for categories not in the plan: %(categories)s; add them to the plan's "
                          "categories") % {"categories": ", ".join(outside)})
    counts.update(overrides)
    if any(value < 0 for value in counts.values()):
        raise PlanError(_("task counts cannot be negative"))
    if over := [key for key in categories if counts[key] > MAX_TASKS_PER_CATEGORY]:
        raise PlanError(_("%(counts)s; at most %(max)d tasks a category") % {
            "counts": ", ".join(_("%(category)s: %(n)d tasks") % {"category": key, "n": counts[key]} for key in over),
            "max": MAX_TASKS_PER_CATEGORY})
    if (planned := sum(counts.values())) > MAX_TASKS:
        raise PlanError(_("the plan has %(n)d tasks; at most %(max)d a job") % {"n": planned, "max": MAX_TASKS})
    return counts


def plan_allocate(
    data: SamplingData,
    *,
    categories: list[str] | None,
    budget: int,
    seed: int,
    examples: dict[str, list[ExampleNote]],
    allocation: Allocation = "weighted",
    explicit_counts: dict[str, int] | None = None,
    overrides: dict[str, int] | None = None,
    symptom_mode: SymptomMode = "uniform",
) -> Plan:
    """The plan's rows (tasks per category, w(C), N_exmp, N_symp) without its tasks: what a preview shows and a job
    request stores, in time that grows with the categories, not the budget. PlanError when the plan cannot be made
    or exceeds MAX_TASKS or MAX_TASKS_PER_CATEGORY.

    Weighted allocation uses w(C) = J3(N_exmp) * J3(N_symp) with N_exmp = len(examples[C]), the usable example
    notes (as examples_group selects them) that the tasks draw from; the plan rows show that same N_exmp."""
    chosen = sorted(set(categories) if categories else (k for k in data.categories if k in examples))
    unknown = [key for key in chosen if key not in data.categories]
    if unknown:
        raise PlanError(_("categories not in the graph: %(categories)s") % {"categories": ", ".join(unknown)})
    if not chosen:
        raise PlanError(_("no categories chosen"))
    if budget < 0:
        raise PlanError(_("the budget cannot be negative"))
    # N_exmp(C) is the number of usable example notes the tasks sample from (METHOD.md: real notes of C with at
    # least min_words words); the same count feeds w(C) and the preview row, never the graph's stored n_examples.
    n_exmp = {key: len(examples.get(key, [])) for key in chosen}
    weights = {key: category_weight(n_exmp[key], data.categories[key].n_symp) for key in chosen}
    counts = _counts(weights, chosen, budget, allocation, explicit_counts or {}, overrides or {})
    rows = tuple(PlanRow(key, data.categories[key].name, counts[key], round(weights[key], 4), n_exmp[key],
                         round(data.categories[key].n_symp, 2)) for key in chosen)
    return Plan(seed=seed, graph_version=data.version, allocation=allocation, symptom_mode=symptom_mode, rows=rows)


def plan_build(
    data: SamplingData,
    *,
    categories: list[str] | None,
    budget: int,
    seed: int,
    examples: dict[str, list[ExampleNote]],
    allocation: Allocation = "weighted",
    explicit_counts: dict[str, int] | None = None,
    overrides: dict[str, int] | None = None,
    symptom_mode: SymptomMode = "uniform",
    language: str = "ru",
) -> Plan:
    """Allocate the budget over categories (plan_allocate) and sample every task's symptoms and example note."""
    plan = plan_allocate(data, categories=categories, budget=budget, seed=seed, examples=examples,
                         allocation=allocation, explicit_counts=explicit_counts, overrides=overrides,
                         symptom_mode=symptom_mode)
    template = TEMPLATE_EXAMPLES.get(language, TEMPLATE_EXAMPLES["en"])
    tasks = []
    for row in plan.rows:
        key = row.category
        for i in range(row.count):
            rng = random.Random(f"{seed}:{key}:{i}")
            donor, symptoms = symptoms_sample(data, key, seed=rng, weighted=symptom_mode == "weighted")
            pool = examples.get(key)
            example = rng.choice(pool) if pool else None  # with replacement, as in the paper
            tasks.append(PlanTask(
                index=len(tasks), category=key, donor_code=donor, symptoms=tuple(symptoms),
                example_note_id=example.note_id if example else None,
                example_text=example.text if example else template,
            ))
    return dataclasses.replace(plan, tasks=tuple(tasks))
