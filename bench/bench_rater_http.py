"""The rater service over HTTP: per-item claims against the study row lock they replaced, in one run.

A study of 6,000 items (3,000 matched pairs), k = 8, is built twice, one copy per server. Each server is gunicorn
started as `make up` starts it (medsyn_site.stack: 2 workers x 4 threads, settings.local, DEBUG off, make up's API
throttles); the baseline server adds `-c bench/_rater_baseline_gunicorn.py`, whose hook swaps in the rater service as
it was (bench/_rater_baseline.py: every next item, submit and skip locks the study row). With plain requests sessions
and threads, each client its own physician with its own API token:

1. 1 client: --loops next-item + submit loops one after another;
2. 8 clients: --loops loops in all, shared out, all at once; loops/s is loops over the phase's wall time;
3. --crowd physician threads doing loops for --seconds, then the database is checked: errors (any answer but
   200/201/204, or a failed connection), lost (submits answered 201 without a stored rating), duplicated
   (item, physician) assignments and items over k (counted from the assignments, not from the claim counter).

Latency is from send to the full body. Phases 1 and 2 alternate between the servers in --rounds rounds (baseline,
product, product, baseline, ...), so a machine whose load changes during the run weighs on both alike; the crowd
phase runs once per server. Server CPU per loop (gunicorn's processes and PostgreSQL's, read from /proc) is
printed too: unlike latency it hardly depends on what else the machine runs.

Run: .venv/bin/python bench/bench_rater_http.py [--items 6000] [--k 8] [--loops 400] [--crowd 200] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import requests
from _services import bench_services_start, percentile

BENCH = Path(__file__).resolve().parent
ANSWERS = {"origin": "synthetic", "confidence": 3, "realism": 3, "plausibility": 4, "consistency": 4, "language": 3}
SYMPTOMS = ("кашель", "насморк", "слабость", "головная боль", "боль в горле", "одышка", "озноб", "тошнота")
TICK = os.sysconf("SC_CLK_TCK")
BASELINE_INSTALLED = "rater baseline (study row lock) installed"  # _rater_baseline_gunicorn.py logs it per worker


def seed(n_items: int, k: int, n_physicians: int) -> tuple[list[int], list[str]]:
    """Two open studies of n_items (the second a copy of the first's pool) and n_physicians with API tokens."""
    from django.contrib.auth.models import Group, User
    from rest_framework.authtoken.models import Token

    from generation.models import Note
    from generation.services import note_content_hash
    from medsyn_site.roles import roles_sync
    from review.assessment.models import StudyItem
    from review.assessment.services import do_build_study_pool, do_create_study, do_open_study

    roles_sync()
    notes = []
    for i in range(n_items):
        origin = "real" if i % 2 == 0 else "synthetic"
        category = f"J{(i // 2) % 50:02d}"
        text = (f"Жалобы на {SYMPTOMS[i % 8]} и {SYMPTOMS[(i // 8) % 8]} в течение {i % 9 + 2} дней, "
                f"температура 37.{i % 10}, заметка {i}.")
        notes.append(Note(origin=origin, text=text, icd_code=category, icd_category=category, source_dataset="bench",
                          content_hash=note_content_hash(origin=origin, icd_code=category, text=text),
                          metadata={"generation_model": "bench"} if origin == "synthetic" else {}))
    Note.objects.bulk_create(notes, batch_size=5000)
    curator = User.objects.create_user("bench_curator")
    started = time.perf_counter()
    first = do_create_study(actor=curator, name="rater bench: product", overlap_k=k)
    do_build_study_pool(actor=curator, study=first, n_per_origin=n_items // 2, seed=1)
    second = do_create_study(actor=curator, name="rater bench: baseline", overlap_k=k)
    copied = [field.attname for field in StudyItem._meta.concrete_fields
              if field.attname not in ("id", "study_id", "token", "rank")]
    StudyItem.objects.bulk_create([StudyItem(study=second, **{name: getattr(item, name) for name in copied})
                                   for item in first.items.all()], batch_size=2000)
    print(f"two studies of {first.items.count()} items (k = {k}) in {time.perf_counter() - started:.1f} s",
          flush=True)
    physicians = User.objects.bulk_create([User(username=f"doc{i}") for i in range(n_physicians)])
    Group.objects.get(name="physician").user_set.add(*physicians)
    tokens = [Token.objects.create(user=doctor).key for doctor in physicians]
    for study in (first, second):
        do_open_study(actor=curator, study=study)
    return [first.pk, second.pk], tokens


@dataclass
class Tally:
    next_ms: list[float] = field(default_factory=list)
    submit_ms: list[float] = field(default_factory=list)
    loops: int = 0
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    seconds: float = 0.0  # wall time of the phase's chunks
    web_cpu: float = 0.0  # CPU seconds of gunicorn's processes during them
    db_cpu: float = 0.0  # and of PostgreSQL's
    lock: threading.Lock = field(default_factory=threading.Lock)

    def error(self, what: str) -> None:
        with self.lock:
            self.errors += 1
            if len(self.error_samples) < 5:
                self.error_samples.append(what)


class Physician:
    """One client: its own keep-alive session and API token."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.session = base, requests.Session()
        self.session.headers["Authorization"] = f"Token {token}"

    def loop(self, tally: Tally) -> bool:
        """One next-item + submit; False when the study has nothing left for this physician (or on an error)."""
        try:
            started = time.perf_counter()
            response = self.session.get(f"{self.base}/next/", timeout=60)
            next_ms = (time.perf_counter() - started) * 1000
            if response.status_code == 204:
                return False
            if response.status_code != 200:
                tally.error(f"next {response.status_code}: {response.text[:200]}")
                return False
            token = response.json()["token"]
            started = time.perf_counter()
            response = self.session.post(f"{self.base}/submit/", json={"token": token, "answers": ANSWERS},
                                         timeout=60)
            submit_ms = (time.perf_counter() - started) * 1000
            if response.status_code != 201:
                tally.error(f"submit {response.status_code}: {response.text[:200]}")
                return False
        except requests.RequestException as error:
            tally.error(f"{type(error).__name__}: {error}")
            return False
        with tally.lock:
            tally.next_ms.append(next_ms)
            tally.submit_ms.append(submit_ms)
            tally.loops += 1
        return True


def _cpu_seconds(*, parents: set[int], groups: set[int]) -> float:
    """User + system CPU of the parents (with their exited children), their live children and the process groups."""
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()  # from the state on: ppid, pgrp, ..., utime at 11
        except OSError:
            continue
        pid, parent, group = int(entry.name), int(fields[1]), int(fields[2])
        if pid in parents or parent in parents or group in groups:
            total += int(fields[11]) + int(fields[12])  # utime, stime
            if pid in parents:
                total += int(fields[13]) + int(fields[14])  # cutime, cstime: children that exited
    return total / TICK


class Server:
    """A gunicorn serving one study, and where its CPU goes (its process group and PostgreSQL's processes)."""

    def __init__(self, name: str, study_id: int, env: dict, config: Path | None, log: Path, postgres: Path) -> None:
        from medsyn_site.stack import BASE_DIR, free_port, port_open, wait_for

        self.name, self.study_id, self.port = name, study_id, free_port()
        command = [sys.executable, "-m", "gunicorn", "medsyn_site.wsgi", "--bind", f"127.0.0.1:{self.port}",
                   "--workers", "2", "--threads", "4", "--timeout", "120"]  # as medsyn_site.stack starts the web
        if config is not None:
            command += ["-c", str(config)]
        with open(log, "ab") as out:
            self.process = subprocess.Popen(command, cwd=BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        wait_for(lambda: port_open(self.port) or self.process.poll() is not None, 60, "gunicorn")
        if self.process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {self.process.returncode}; see {log}")
        if config is not None:  # both workers have swapped the baseline in before they answer
            wait_for(lambda: log.read_text().count(BASELINE_INSTALLED) == 2, 60, "the baseline in both workers")
        self.base = f"http://127.0.0.1:{self.port}/api/review/studies/{study_id}"
        self.postmaster = int((postgres / "postmaster.pid").read_text().split("\n", 1)[0])

    def cpu(self) -> tuple[float, float]:
        """CPU seconds so far of (gunicorn, PostgreSQL)."""
        return _cpu_seconds(parents=set(), groups={self.process.pid}), _cpu_seconds(parents={self.postmaster},
                                                                                      groups=set())

    def stop(self) -> None:
        from medsyn_site.stack import process_group_stop

        process_group_stop(self.process.pid, timeout=10)


def _threads_run(targets: list) -> float:
    threads = [threading.Thread(target=target) for target in targets]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def loops_run(server: Server, tokens: list[str], loops: int, tally: Tally) -> None:
    """loops next+submit loops shared out over one client per token, all at once, added to tally."""
    shares = [loops // len(tokens) + (i < loops % len(tokens)) for i in range(len(tokens))]

    def client(token: str, share: int) -> None:
        physician = Physician(server.base, token)
        for _ in range(share):
            if not physician.loop(tally):
                return

    web, db = server.cpu()
    tally.seconds += _threads_run([lambda t=t, s=s: client(t, s) for t, s in zip(tokens, shares, strict=True)])
    web_after, db_after = server.cpu()
    tally.web_cpu += web_after - web
    tally.db_cpu += db_after - db


def crowd_run(server: Server, tokens: list[str], seconds: float) -> Tally:
    tally = Tally()
    deadline = time.monotonic() + seconds

    def client(token: str) -> None:
        physician = Physician(server.base, token)
        while time.monotonic() < deadline and physician.loop(tally):
            pass

    web, db = server.cpu()
    tally.seconds = _threads_run([lambda t=t: client(t) for t in tokens])
    web_after, db_after = server.cpu()
    tally.web_cpu, tally.db_cpu = web_after - web, db_after - db
    return tally


def integrity(study_id: int) -> dict:
    """Ratings stored, duplicated (item, physician) assignments, items over k (from the assignments themselves)."""
    from django.db import connection
    from django.db.models import Count

    from review.assessment.models import Assignment, Rating, Study

    study = Study.objects.get(pk=study_id)
    active = Assignment.objects.filter(study=study).exclude(status=Assignment.Status.SKIPPED)
    pairs = Assignment.objects.filter(study=study).values("item", "physician").annotate(n=Count("id"))
    result = {"ratings": Rating.objects.filter(assignment__study=study).count(),
              "duplicated": pairs.filter(n__gt=1).count(),
              "over_k": active.values("item").annotate(n=Count("id")).filter(n__gt=study.overlap_k).count()}
    connection.close()
    return result


def _p(values: list[float], p: float) -> float:
    return percentile(values, p) if values else float("nan")


def table_print(results: dict[str, dict], crowd: int) -> None:
    old, new = results["baseline"], results["product"]
    rows = []
    for label, phase, kind, target in (("next item, 1 client", "one", "next_ms", "p95 <= 15 ms"),
                                       ("submit, 1 client", "one", "submit_ms", "p95 <= 15 ms"),
                                       ("next item, 8 clients", "eight", "next_ms", "p95 <= 50 ms"),
                                       ("submit, 8 clients", "eight", "submit_ms", "p95 <= 50 ms")):
        before, after = getattr(old[phase], kind), getattr(new[phase], kind)
        rows.append((f"{label}: p50 / p95 ms", f"{_p(before, 50):.1f} / {_p(before, 95):.1f}",
                     f"{_p(after, 50):.1f} / {_p(after, 95):.1f}", f"p95 {_p(before, 95) / _p(after, 95):.1f}x lower",
                     target))
    rates = {name: {phase: r[phase].loops / r[phase].seconds for phase in ("eight", "crowd")}
             for name, r in results.items()}
    rows.append(("next+submit loops/s, 8 clients", f"{rates['baseline']['eight']:.1f}",
                 f"{rates['product']['eight']:.1f}", f"{rates['product']['eight'] / rates['baseline']['eight']:.1f}x",
                 ">= 3x the baseline"))
    for phase, label in (("one", "1 client"), ("eight", "8 clients"), ("crowd", f"{crowd} physicians")):
        web, db = ([getattr(r[phase], kind) * 1000 / max(r[phase].loops, 1) for r in (old, new)]
                   for kind in ("web_cpu", "db_cpu"))
        rows.append((f"CPU ms per loop, gunicorn + PostgreSQL, {label}", f"{web[0]:.1f} + {db[0]:.1f}",
                     f"{web[1]:.1f} + {db[1]:.1f}", f"{(web[0] + db[0]) / (web[1] + db[1]):.1f}x less", ""))
    rows.append((f"loops/s, {crowd} physicians", f"{rates['baseline']['crowd']:.1f}",
                 f"{rates['product']['crowd']:.1f}", f"{rates['product']['crowd'] / rates['baseline']['crowd']:.1f}x",
                 ""))
    for label, key in (("errors, all phases", "errors"), (f"lost submits, {crowd} physicians", "lost"),
                       ("duplicated (item, physician), whole study", "duplicated"),
                       ("items over k, whole study", "over_k")):
        rows.append((label, str(old[key]), str(new[key]), "", "0"))
    header = ("measure", "study row lock", "per-item claims", "ratio", "target")
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(5)]
    for row in (header, tuple("-" * width for width in widths), *rows):
        print(" | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=6000)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--loops", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--crowd", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    root = bench_services_start()
    (product_study, baseline_study), tokens = seed(args.items, args.k, 9 + args.crowd)
    from django.db import connection

    connection.close()
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="medsyn_site.settings.local", LOG_LEVEL="INFO", PYTHONUNBUFFERED="1")
    servers = {"baseline": Server("study row lock", baseline_study, env, BENCH / "_rater_baseline_gunicorn.py",
                                  root / "web-baseline.log", root / "postgres"),
               "product": Server("per-item claims", product_study, env, None, root / "web-product.log",
                                 root / "postgres")}
    results = {name: {"one": Tally(), "eight": Tally()} for name in servers}
    print(f"load average at the start: {os.getloadavg()[0]:.1f} (2 cores)", flush=True)
    try:
        for server in servers.values():  # each worker's first requests (imports, connections) are not measured
            for token in tokens[:9]:
                Physician(server.base, token).session.get(f"{server.base}/next/", timeout=60)
        for round_ in range(args.rounds):
            order = ("baseline", "product") if round_ % 2 == 0 else ("product", "baseline")
            for name in order:
                loops_run(servers[name], tokens[:1], args.loops // args.rounds, results[name]["one"])
            for name in order:
                loops_run(servers[name], tokens[1:9], args.loops // args.rounds, results[name]["eight"])
        for name, server in servers.items():
            before = integrity(server.study_id)["ratings"]
            crowd = crowd_run(server, tokens[9:9 + args.crowd], args.seconds)
            after = integrity(server.study_id)
            results[name].update(crowd=crowd, errors=sum(results[name][p].errors for p in ("one", "eight"))
                                 + crowd.errors, lost=crowd.loops - (after["ratings"] - before),
                                 duplicated=after["duplicated"], over_k=after["over_k"])
            for phase in ("one", "eight", "crowd"):
                for sample in results[name][phase].error_samples:
                    print(f"  {server.name}, error: {sample}", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    print(f"load average at the end: {os.getloadavg()[0]:.1f}\n")
    table_print(results, args.crowd)


if __name__ == "__main__":
    main()
