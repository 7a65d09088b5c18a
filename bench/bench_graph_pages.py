"""Benchmark: server-side latency of the code page and search with the full seed graph loaded.

    .venv/bin/python bench/bench_graph_pages.py [--requests 1000]

Requests go through Django's full stack in-process (middleware, auth, selectors, templates) with
django.test.Client, so the figures are server time without network. Production-like settings
(DEBUG off, status banner cached as configured).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time

from bench_graph_common import services_start


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def timed(client, urls: list[str]) -> list[float]:
    times = []
    for url in urls:
        started = time.perf_counter()
        response = client.get(url)
        times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (url, response.status_code)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    args = parser.parse_args()
    services_start(with_database=True, settings_module="medsyn_site.settings.local")
    from django.contrib.auth.models import Group, User
    from django.core.management import call_command
    from django.test import Client
    from django.urls import reverse

    from graph.services import graph_seed
    from graph.store import get_graph_store
    from medsyn_site.roles import roles_sync

    call_command("migrate", verbosity=0)
    roles_sync()
    started = time.perf_counter()
    graph_seed()
    print(f"seed graph loaded in {time.perf_counter() - started:.2f} s")
    user = User.objects.create_user("bench", password="pw-bench-123456")
    user.groups.add(Group.objects.get(name="researcher"))
    client = Client()
    client.force_login(user)

    store = get_graph_store()
    categories = [r["k"] for r in store.run("MATCH (c:Category) WHERE c.n_notes > 0 RETURN c.key AS k")]
    codes = [r["k"] for r in store.run("MATCH (c:Code) RETURN c.key AS k")]
    symptoms = [r["k"] for r in store.run("MATCH (s:Symptom) RETURN s.key AS k")]
    rng = random.Random(17)
    code_urls = [reverse("graph:code", kwargs={"key": rng.choice(categories if i % 2 else codes)})
                 for i in range(args.requests)]
    words = ["кашель", "боль", "головная", "J0", "J06", "M54", "I1", "bronch", "infection", "pneumonia", "K29.7",
             "температ", "acute", "тошнота", "диабет", "E11"] + [s[:5] for s in symptoms[:40]]
    search_urls = [f"{reverse('graph:search')}?q={rng.choice(words)}" for _ in range(args.requests)]
    hx = Client(headers={"HX-Request": "true"})
    hx.force_login(user)

    timed(client, code_urls[:50])  # warm-up: template loading, query plan cache
    for name, c, urls in (("code page", client, code_urls), ("search (htmx partial)", hx, search_urls),
                          ("search (full page)", client, search_urls)):
        times = timed(c, urls)
        p50, p95 = statistics.median(times), percentile(times, 0.95)
        print(f"{name:<22} n={len(times)}  p50={p50:6.1f} ms  p95={p95:6.1f} ms"
              f"  max={max(times):6.1f} ms  (target p95 < 50 ms)")


if __name__ == "__main__":
    main()
