"""Plan previews and job creation at the plan bounds, against the seed graph and the RuMedTop3 notes.

    .venv/bin/python bench/bench_plan_request.py [--budgets 1000,10000,41000,100000] [--repeat 3]

Loads the demo's data into throwaway services (bench/_services.py): the RuMedTop3 train and dev notes as real notes
and the seed graph (full ICD-10 + RuMedBench symptoms), then for each budget (uniform allocation over every category
with example notes, so that the plan has exactly budget tasks):
- what a preview costs in the request: POST /api/generation/plans/ through Django's whole stack in process
  (django.test.Client), and its parts: reading the graph and the example notes, allocating the budget (the rows a
  preview shows); and what sampling every task would add (only a job's worker does it now);
- what creating a job costs in the request (POST /api/generation/jobs/: the job row, no items) and in the worker
  (jobs.job_items_build: sampling, every prompt, the items written).
The target is a request under ~2 s at the largest allowed budget (planning.MAX_TASKS).

Figures measured on the 2-core development machine (other sessions' test suites running at the same time):

| budget | preview POST | create POST | worker: build items | before: preview POST | before: create POST |
|---|---|---|---|---|---|
| 1,000 | 0.26 s | 0.45 s | 0.74 s | 0.60 s | 0.57 s |
| 10,000 | 0.30 s | 0.31 s | 4.45 s | 0.45 s | 4.53 s |
| 41,000 | 0.32 s | 0.52 s | 16.6 s | 1.35 s | 16.5 s |
| 100,000 | 0.30 s | 0.17 s | 36.7 s | 2.65 s | 39.0 s |

"Before": when a preview sampled every task and a job request built every item in the request (weighted
allocation). Sampling alone takes 2.7 s at 100,000 tasks, and writing the items with their prompts the rest, so a
request now only allocates (reading the graph and the example notes, ~0.3 s, whatever the budget) and the worker
builds the items before its first batch.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

from _services import bench_services_start


def timed(action, repeat: int = 1) -> tuple[float, object]:
    """The median wall time of action over repeat runs (seconds) and its last result."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def measure(budget: int, *, client, config, data, examples, repeat: int) -> str:
    """One line of the table: the request's parts, the preview and job requests, the worker's build."""
    from generation import jobs
    from generation.models import GenerationJob
    from generation.planning import plan_allocate, plan_build
    from graph.sampling import sampling_data_load
    from graph.store import get_graph_store

    body = {"budget": budget, "allocation": "uniform", "seed": 17}
    load_s, _ = timed(lambda: (sampling_data_load(get_graph_store()), jobs.examples_load(None, min_words=30)), repeat)
    allocate_s, rows = timed(lambda: plan_allocate(data, categories=None, budget=budget, seed=17, examples=examples,
                                                   allocation="uniform"), repeat)
    sample_s, plan = timed(lambda: plan_build(data, categories=None, budget=budget, seed=17, examples=examples,
                                              allocation="uniform"))
    preview_s, preview = timed(lambda: client.post("/api/generation/plans/", body, content_type="application/json"),
                               repeat)
    if preview.status_code != 200:
        return f"{budget:>8} refused: {preview.status_code} {preview.content.decode()[:200]}"
    create_s, created = timed(lambda: client.post("/api/generation/jobs/", {**body, "model_config": config.name},
                                                  content_type="application/json"))
    assert created.status_code == 201, created.content
    job = GenerationJob.objects.get(pk=created.json()["id"])
    build_s, _ = timed(lambda: jobs.job_items_build(job))
    assert job.items.count() == job.planned == plan.total == rows.total == preview.json()["total"], job
    return (f"{budget:>8} {plan.total:>7} {preview_s:>12.2f}s {load_s:>6.2f}s {allocate_s:>8.3f}s "
            f"{sample_s:>12.2f}s {create_s:>11.2f}s {build_s:>11.2f}s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--budgets", default="1000,10000,41000,100000")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    bench_services_start(graph=True)
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.test import Client

    from generation import jobs
    from generation.models import ModelConfig
    from generation.planning import MAX_TASKS, MAX_TASKS_PER_CATEGORY
    from graph.sampling import sampling_data_load
    from graph.services import graph_seed
    from graph.store import get_graph_store
    from medsyn_site.roles import roles_sync

    started = time.perf_counter()
    roles_sync()
    call_command("generation_defaults", stdout=io.StringIO())
    for split in ("train", "dev"):
        call_command("import_real_notes", split=split, stdout=io.StringIO(),
                     file=settings.BASE_DIR / "data" / "rumedbench" / "RuMedTop3" / f"{split}_v1.jsonl")
    graph_seed()
    print(f"data loaded in {time.perf_counter() - started:.1f} s; bounds: {MAX_TASKS} tasks a job, "
          f"{MAX_TASKS_PER_CATEGORY} a category")
    config = ModelConfig.objects.create(name="bench-api", backend=ModelConfig.Backend.OPENAI, api_model="bench",
                                        base_url="http://127.0.0.1:9/v1")
    user = User.objects.create_user("bench", password="pw-bench-123456")
    user.groups.add(Group.objects.get(name="researcher"))
    client = Client()
    client.force_login(user)
    jobs.job_enqueue = lambda job: None  # no worker: the items are built here, by the worker's function

    data = sampling_data_load(get_graph_store())
    examples = jobs.examples_load(None, min_words=30)
    print(f"graph: {len(data.categories)} categories; {sum(map(len, examples.values()))} usable example notes "
          f"in {len(examples)} categories; uniform allocation over those, so that tasks = budget")
    print(f"{'budget':>8} {'tasks':>7} {'preview POST':>13} {'load':>7} {'allocate':>9} {'sample tasks':>13} "
          f"{'create POST':>12} {'build items':>12}")
    for budget in (int(b) for b in args.budgets.split(",")):
        print(measure(budget, client=client, config=config, data=data, examples=examples, repeat=args.repeat),
              flush=True)


if __name__ == "__main__":
    main()
