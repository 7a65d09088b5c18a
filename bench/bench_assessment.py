"""Assessment at scale: 100k notes, 50 physicians.

1. Server-side p95 of next-item and submit (Django's request handling in process, via the API).
2. A load run: concurrent physicians against a real gunicorn server for a fixed time, then a check that
   no rating was lost or duplicated and no note got more than k ratings.

Run: .venv/bin/python bench/bench_assessment.py [--notes 100000] [--physicians 50] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

from _services import bench_services_start, percentile

ANSWERS = {"origin": "synthetic", "confidence": 3, "realism": 3, "plausibility": 4, "consistency": 4,
           "language": 3}


def seed(n_notes: int, n_physicians: int):
    from django.contrib.auth.models import Group, User

    from generation.models import Note
    from generation.services import note_content_hash
    from medsyn_site.roles import roles_sync
    from review.assessment.services import do_build_study_pool, do_create_study, do_open_study

    roles_sync()
    notes = []
    for i in range(n_notes):
        origin = "real" if i % 2 == 0 else "synthetic"
        category = f"J{(i // 2) % 50:02d}"
        text = f"Жалобы на кашель и насморк в течение {i % 9 + 2} дней, температура 37.{i % 10}, заметка {i}."
        notes.append(Note(origin=origin, text=text, icd_code=category, icd_category=category, source_dataset="bench",
                          content_hash=note_content_hash(origin=origin, icd_code=category, text=text),
                          metadata={"generation_model": "bench"} if origin == "synthetic" else {}))
    started = time.perf_counter()
    Note.objects.bulk_create(notes, batch_size=5000)
    print(f"seeded {n_notes} notes in {time.perf_counter() - started:.1f} s")
    curator = User.objects.create_user("bench_curator")
    study = do_create_study(actor=curator, name="bench", overlap_k=3)
    started = time.perf_counter()
    report = do_build_study_pool(actor=curator, study=study, n_per_origin=n_notes // 2, seed=1)
    print(f"pool of {2 * report['pairs']} items built in {time.perf_counter() - started:.1f} s")
    physicians = User.objects.bulk_create([User(username=f"doc{i}") for i in range(n_physicians)])
    group = Group.objects.get(name="physician")
    group.user_set.add(*physicians)
    do_open_study(actor=curator, study=study)
    return study, list(User.objects.filter(username__startswith="doc"))


def server_side_latency(study, physicians, rounds: int) -> None:
    from django.test import Client

    clients = []
    for doctor in physicians:
        client = Client()
        client.force_login(doctor)
        clients.append(client)
    next_times, submit_times = [], []
    for i in range(rounds):
        client = clients[i % len(clients)]
        started = time.perf_counter()
        response = client.get(f"/api/review/studies/{study.pk}/next/")
        next_times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
        token = response.json()["token"]
        started = time.perf_counter()
        response = client.post(f"/api/review/studies/{study.pk}/submit/", {"token": token, "answers": ANSWERS},
                               content_type="application/json")
        submit_times.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 201, response.content
    for name, times in (("next-item", next_times), ("submit", submit_times)):
        print(f"{name:<10} server-side over {len(times)} requests: p50 {percentile(times, 50):.1f} ms, "
              f"p95 {percentile(times, 95):.1f} ms, max {max(times):.1f} ms (target p95 < 50 ms)")


def load_run(study, physicians, seconds: float) -> None:
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from medsyn_site.stack import BASE_DIR, free_port, port_open, process_group_stop, wait_for
    from review.assessment.models import Assignment, Rating

    tokens = [Token.objects.get_or_create(user=d)[0].key for d in physicians]
    connection.close()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "medsyn_site.wsgi", "--bind", f"127.0.0.1:{port}",
                               "--workers", "2", "--threads", "8", "--log-level", "warning"],
                              cwd=BASE_DIR, env=dict(os.environ), start_new_session=True)
    try:
        wait_for(lambda: port_open(port), 30, "gunicorn")
        base = f"http://127.0.0.1:{port}/api/review/studies/{study.pk}"
        counts = {"requests": 0, "errors": 0, "submitted": 0}
        lock = threading.Lock()
        deadline = time.monotonic() + seconds

        def call(method: str, url: str, token: str, body: dict | None = None) -> tuple[int, dict | None]:
            data = json.dumps(body).encode() if body is not None else None
            request = urllib.request.Request(url, data=data, method=method, headers={
                "Authorization": f"Token {token}", "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    raw = response.read()
                    return response.status, json.loads(raw) if raw else None
            except urllib.error.HTTPError as error:
                return error.code, None

        def physician(token: str) -> None:
            while time.monotonic() < deadline:
                status, item = call("GET", f"{base}/next/", token)
                ok = status == 200
                if ok:
                    status, _ = call("POST", f"{base}/submit/", token, {"token": item["token"], "answers": ANSWERS})
                with lock:
                    counts["requests"] += 2 if ok else 1
                    if status not in (200, 201, 204):
                        counts["errors"] += 1
                    if ok and status == 201:
                        counts["submitted"] += 1
                if status == 204:
                    return

        threads = [threading.Thread(target=physician, args=(t,)) for t in tokens]
        before = Rating.objects.filter(assignment__study=study).count()
        connection.close()
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        ratings = Rating.objects.filter(assignment__study=study).count() - before
        pairs = list(Assignment.objects.filter(study=study).values_list("item_id", "physician_id"))
        over_k = study.items.filter(active_assignments__gt=study.overlap_k).count()
        print(f"load: {len(threads)} physicians for {elapsed:.1f} s: {counts['requests']} requests "
              f"({counts['requests'] / elapsed:.0f}/s), {counts['errors']} errors")
        print(f"load: {counts['submitted']} submits acknowledged, {ratings} ratings stored: "
              f"lost {counts['submitted'] - ratings}, duplicated assignments {len(pairs) - len(set(pairs))}, "
              f"notes over k {over_k}")
    finally:
        process_group_stop(server.pid, timeout=10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notes", type=int, default=100_000)
    parser.add_argument("--physicians", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    bench_services_start()
    study, physicians = seed(args.notes, args.physicians)
    server_side_latency(study, physicians, args.rounds)
    load_run(study, physicians, args.seconds)


if __name__ == "__main__":
    main()
