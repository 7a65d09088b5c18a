"""Instruction set preview and build over the full RuMedTop3 train split and the seed graph.

    .venv/bin/python bench/bench_instruction_set.py [--repeat 3] [--cap 0] [--validation-share 0.05]

Loads the demo's data into throwaway services (bench/_services.py): the RuMedTop3 train and dev notes as real notes
(only train is read) and the seed graph (full ICD-10 + RuMedBench symptoms), then times, each as the median of
--repeat runs:
- computing the records (lexicon matching and prompts) in a fresh process (cold: pymorphy3's dictionaries, empty lemma
  and lexicon caches), with warm lemma caches but a new lexicon (a worker's next build after a graph change), and
  again with the same lexicon (its answers kept: the next preview of the same split);
- a preview through Django's whole stack in process (POST /api/training/sets/preview/, django.test.Client), warm;
- a build: the request (POST /api/training/sets/, 202: the version reserved, the job queued) and the job's work
  (instruction_set_build_run: records, JSONL, `datasets` folder, zip, sums, the set's rows), cold and warm.
A build of the full train split over ~5 s runs as a job (InstructionSetBuild, default queue), not in the request.

Figures measured on the 2-core development machine (other sessions' test suites running at the same time, load
average 4-5), RuMedTop3 train: 4,690 notes -> 11,624 records (11,044 train, 580 validation, share 0.05) in 105
categories; 2,446 records left out because the note mentions no symptom the graph links to its category (1,223 notes
get only the code variant); 238 prompt(S,E) records with the neutral example (a category with no other usable note):

| measure | no cap | cap 200 |
|---|---|---|
| compute, fresh process (pymorphy3 loaded, lemmas and lexicon empty) | 6.0 s | 4.6 s |
| compute, warm lemmas, new lexicon | 3.2 s | 3.1 s |
| compute, same lexicon (its answers kept) | 0.8 s | 0.8 s |
| preview POST (same lexicon) | 1.2 s | 1.9 s |
| build POST (version reserved, job queued) | 0.04 s | 0.05 s |
| build job, fresh process | 6.8 s | 5.2 s |
| build job, warm | 2.2 s | 1.3 s |

A fresh worker or web process takes over ~5 s, so the build runs as a job on the default queue.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time

from _services import bench_services_start


def timed(action, repeat: int = 1) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = action()
        times.append(time.perf_counter() - started)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cap", type=int, default=0, help="cap per category (0: none)")
    parser.add_argument("--validation-share", type=float, default=0.05)
    args = parser.parse_args()

    bench_services_start(graph=True)
    from django.conf import settings
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.test import Client

    from generation.training import instruction_sets
    from generation.training.instruction_sets import (
        InstructionSetRequest,
        instruction_set_build_run,
        instruction_set_compute,
    )
    from generation.training.models import InstructionSet
    from graph.lexicon import symptom_lexicon
    from graph.sampling import sampling_data_load
    from graph.services import graph_seed
    from graph.store import get_graph_store
    from medsyn_site.core import text
    from medsyn_site.core.text import lemma
    from medsyn_site.roles import roles_sync

    started = time.perf_counter()
    roles_sync()
    call_command("generation_defaults", stdout=io.StringIO())
    for split in ("train", "dev"):
        call_command("import_real_notes", split=split, stdout=io.StringIO(),
                     file=settings.BASE_DIR / "data" / "rumedbench" / "RuMedTop3" / f"{split}_v1.jsonl")
    graph_seed()
    print(f"data loaded in {time.perf_counter() - started:.1f} s")
    user = User.objects.create_user("bench", password="pw-bench-123456")
    user.groups.add(Group.objects.get(name="researcher"))
    client = Client()
    client.force_login(user)

    body = {"split": "train", "seed": 17, "validation_share": args.validation_share,
            **({"cap_per_category": args.cap} if args.cap else {})}
    request = InstructionSetRequest(split="train", seed=17, validation_share=args.validation_share,
                                    cap_per_category=args.cap or None)
    instruction_sets.job_send_on_commit = lambda job: None  # no worker: the job's function runs here
    text._morph.cache_clear()  # the graph import above loaded the dictionaries and filled the lemma cache
    lemma.cache_clear()
    cold_s, plan = timed(lambda: instruction_set_compute(request))
    graph_s, data = timed(lambda: sampling_data_load(get_graph_store()), args.repeat)

    def fresh_lexicon():
        symptom_lexicon.cache_clear()
        return instruction_set_compute(request, data=data)

    new_lexicon_s, _ = timed(fresh_lexicon, args.repeat)
    same_lexicon_s, _ = timed(lambda: instruction_set_compute(request, data=data), args.repeat)
    print(f"train split: {plan.provenance['notes_in_split']} notes -> {plan.total} records "
          f"({plan.n_train} train, {plan.n_validation} validation) in {len(plan.counts['by_category'])} categories; "
          f"skipped {plan.skipped}; symptoms found {plan.provenance['symptoms_found']}; "
          f"neutral example {plan.provenance['template_examples']}")
    print(f"compute: cold process {cold_s:.2f} s; warm lemmas, new lexicon {new_lexicon_s:.2f} s; same lexicon "
          f"{same_lexicon_s:.2f} s; graph read {graph_s:.2f} s")
    preview_s, preview = timed(lambda: client.post("/api/training/sets/preview/", body,
                                                   content_type="application/json"), args.repeat)
    assert preview.status_code == 200, preview.content
    versions = iter(range(1, 1000))

    def build(clear: bool):
        if clear:
            symptom_lexicon.cache_clear()
            lemma.cache_clear()
            text._morph.cache_clear()
        started = time.perf_counter()
        response = client.post("/api/training/sets/", {**body, "name": f"bench-{next(versions)}"},
                               content_type="application/json")
        assert response.status_code == 202, response.content
        request_s = time.perf_counter() - started
        created = InstructionSet.objects.get(pk=response.json()["id"])
        instruction_set_build_run(created.build.pk)
        return request_s, time.perf_counter() - started - request_s, InstructionSet.objects.get(pk=created.pk)

    request_s, cold_job_s, built = build(clear=True)
    warm = [build(clear=False) for _ in range(args.repeat)]
    warm_job_s = statistics.median(job for _, job, _ in warm)
    assert built.status == "ready" and built.n_train + built.n_validation == preview.json()["total"], built
    print(f"preview POST {preview_s:.2f} s; build POST {request_s:.2f} s; build job: cold lemmas and lexicon "
          f"{cold_job_s:.2f} s, warm {warm_job_s:.2f} s (JSONL sha256 {built.sha256[:12]}..., "
          f"{built.n_train + built.n_validation} records, the same in every version: "
          f"{len({b.sha256 for _, _, b in warm} | {built.sha256}) == 1})")


if __name__ == "__main__":
    main()
