"""Schema-driven fuzzing of the whole API, as every role: no request may end in a server error (5xx).

    make fuzz                                   # installs requirements-fuzz.txt (schemathesis), then runs this
    .venv/bin/python bench/fuzz_api.py [--max-examples 40] [--roles physician,curator,researcher,admin]
                                       [--seed 11] [--max-time 0]

Starts throwaway PostgreSQL and FalkorDB/Redis (bench/_services.py), loads the demo data (RuMedTop3 notes, the seed
graph, templates and model configurations), adds a small blind study, curated notes and a release so that path
parameters and filters meet real objects, then serves the site with gunicorn (as `make up` does, DEBUG off) on a
free port. For each role it runs `st run` (schemathesis) on /api/schema/ with that role's API token: the examples,
coverage and fuzzing phases, positive and negative data, NUL bytes allowed, check `not_a_server_error` only (the
schema conformance checks are reported by schemathesis but are not this script's verdict). No Celery worker runs:
jobs the fuzzer starts stay queued, which is what they do when every worker is busy.

Prints, per role, the operations tested, the requests sent and the server errors found, and exits 1 when any role
met a server error (its reproduction is in the schemathesis output above the table). Bounded: --max-examples per
operation and phase; --max-time caps each role's run in seconds (0: no cap). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from _services import bench_services_start

ROOT = Path(__file__).resolve().parent.parent
ROLES = ("physician", "curator", "researcher", "admin")


def _objects_make() -> None:
    """Objects the fuzzer's path parameters and filters can find: notes in several review states, a release (when
    any note is releasable), an open study with its pool."""
    from django.contrib.auth import get_user_model
    from django.core.exceptions import ValidationError

    from generation.models import Note
    from generation.services import note_content_hash
    from review.assessment.services import do_open_study, do_set_up_study
    from review.curation.services import do_transition_note
    from review.releases.services import do_create_release

    User = get_user_model()
    curator = User.objects.get(username="demo_curator")
    real = list(Note.objects.filter(origin=Note.Origin.REAL).order_by("id")[:40])
    synthetic = []
    for note in real[:20]:
        text = note.text[::-1]
        synthetic.append(Note.objects.create(
            origin=Note.Origin.SYNTHETIC, icd_code=note.icd_code, icd_category=note.icd_category, text=text,
            metadata={"generation_model": "fuzz"},
            content_hash=note_content_hash(origin=Note.Origin.SYNTHETIC, icd_code=note.icd_code, text=text)))
    for note in synthetic[:10]:
        do_transition_note(actor=curator, note=note, action="submit")
    for note in synthetic[:5]:
        do_transition_note(actor=curator, note=note, action="approve")
    try:
        do_create_release(actor=curator, name="fuzz", filters={}, queue_export=False)
    except ValidationError as error:  # nothing releasable (no scans ran): the release endpoints meet 404s only
        print(f"no release: {error}")
    study = do_set_up_study(actor=curator, name="fuzz study", instructions="", overlap_k=1, n_per_origin=5, seed=1,
                            include_failed_checks=True)
    do_open_study(actor=curator, study=study, physicians=[User.objects.get(username="demo_physician")])


def _tokens() -> dict[str, str]:
    from django.contrib.auth import get_user_model

    from medsyn_site.accounts import do_token_issue

    User = get_user_model()
    return {role: do_token_issue(User.objects.get(username=f"demo_{role}")).key for role in ROLES}


def _serve(port: int, log: Path) -> subprocess.Popen:
    env = dict(os.environ, MEDSYN_API_THROTTLE_USER="100000/minute", MEDSYN_API_THROTTLE_ANON="100000/minute",
               MEDSYN_API_THROTTLE_TOKEN="100000/minute", DJANGO_DEBUG="0")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "medsyn_site.wsgi", "--bind", f"127.0.0.1:{port}", "--workers", "2",
         "--timeout", "60", "--access-logfile", "-"],
        cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/schema/?format=json", timeout=5):
                return server
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"the server did not start; see {log}")


def _fuzz(role: str, token: str, port: int, args: argparse.Namespace, reports: Path) -> dict:
    junit = reports / f"{role}.xml"
    command = [str(Path(sys.executable).with_name("st")), "run", f"http://127.0.0.1:{port}/api/schema/?format=json",
               "--header", f"Authorization: Token {token}", "--checks", "not_a_server_error",
               "--phases", "examples,coverage,fuzzing", "--mode", "all", "--max-examples", str(args.max_examples),
               "--seed", str(args.seed), "--generation-allow-x00", "true", "--request-timeout", "30",
               # one schemathesis worker: with two, hypothesis hits CPython 3.11's threaded ast.parse bug
               # (python/cpython#106905) and the run ends as a crash of the fuzzer, not of the server
               "--workers", "1", "--no-color", "--report", "junit", "--report-junit-path", str(junit),
               "--suppress-health-check", "all", "--generation-database", "none"]
    if args.max_time:
        command += ["--max-time", str(args.max_time)]
    started = time.monotonic()
    run = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    output = run.stdout + run.stderr
    server_errors = len(re.findall(r"Server error", output))
    requests = sum(int(n) for n in re.findall(r"(\d+) generated", output)) or None
    operations = re.search(r"(\d+) (?:tested|selected)", output)
    return {"role": role, "exit": run.returncode, "server_errors": server_errors,
            "operations": int(operations.group(1)) if operations else None, "requests": requests,
            "seconds": round(time.monotonic() - started, 1), "output": output}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--max-examples", type=int, default=40)
    parser.add_argument("--roles", default=",".join(ROLES))
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--max-time", type=int, default=0)
    args = parser.parse_args()
    if shutil.which("st", path=str(Path(sys.executable).parent)) is None:
        raise SystemExit("schemathesis is not installed: make fuzz (or pip install -r requirements-fuzz.txt)")

    root = bench_services_start(graph=True)
    from django.core.management import call_command

    from medsyn_site.stack import free_port

    print("loading the demo data ...", flush=True)
    with open(os.devnull, "w") as quiet:
        call_command("load_demo_data", verbosity=0, stdout=quiet)
    _objects_make()
    tokens = _tokens()
    port = free_port()
    log = root / "gunicorn.log"
    server = _serve(port, log)
    reports = Path(tempfile.mkdtemp(prefix="medsyn-fuzz-"))
    results = []
    try:
        for role in args.roles.split(","):
            print(f"fuzzing the API as {role} ...", flush=True)
            result = _fuzz(role, tokens[role], port, args, reports)
            tail = result["output"] if result["exit"] != 0 else result["output"][-1500:]
            print(tail[-8000:])
            results.append(result)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    served_5xx = len(re.findall(rb'" 5\d\d ', log.read_bytes()))
    print(f"\n{'role':<12}{'operations':>12}{'requests':>10}{'5xx':>6}{'exit':>6}{'seconds':>9}")
    for r in results:
        print(f"{r['role']:<12}{r['operations'] or '?':>12}{r['requests'] or '?':>10}{r['server_errors']:>6}"
              f"{r['exit']:>6}{r['seconds']:>9}")
    print(f"5xx answers in the server's access log: {served_5xx}; reports (JUnit) in {reports}")
    print(json.dumps({"roles": {r["role"]: {k: r[k] for k in ("operations", "requests", "server_errors", "exit")}
                                for r in results}, "access_log_5xx": served_5xx}))
    return 1 if served_5xx or any(r["server_errors"] or r["exit"] not in (0,) for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
