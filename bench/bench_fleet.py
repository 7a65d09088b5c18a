"""One generation job spread over 1, 2 and 4 workers (core.chunks): items/s against one worker.

Starts its own PostgreSQL and FalkorDB (graph and broker), a fake OpenAI-compatible server that answers every request
after --latency seconds (a model's time to write: the work is waiting, not CPU), and for each worker count N a fleet
of N Celery worker processes ("hosts": each its own var dir and hostname, one chunk at a time, the model's window
of --concurrency requests in flight), then runs one job of --items items on the api queue and times it from the
job's start to its end. Prints items/s and the ratio to one worker, and checks every item ended once (no request
made twice, one note per done item). The 2-core target: >= 3x at 4 workers.

Run: .venv/bin/python bench/bench_fleet.py [--items 240] [--latency 0.2] [--concurrency 4] [--workers 1,2,4]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._services import bench_services_start  # noqa: E402


class LatencyServer:
    """POST /v1/chat/completions: a numbered answer (no two notes alike) after latency seconds."""

    def __init__(self, latency: float) -> None:
        self.latency, self.lock, self.served = latency, threading.Lock(), 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                return

            def do_POST(self) -> None:
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.served += 1
                    number = server.served
                time.sleep(server.latency)
                text = f"Жалобы на кашель и насморк в течение {number} дней, температура до 38, слабость."
                body = json.dumps({"id": f"x{number}", "object": "chat.completion", "created": 0,
                                   "model": payload["model"],
                                   "choices": [{"index": 0, "finish_reason": "stop",
                                                "message": {"role": "assistant", "content": text}}],
                                   "usage": {"prompt_tokens": 50, "completion_tokens": 20, "total_tokens": 70}},
                                  ensure_ascii=False).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()


def workers_start(count: int, root: Path) -> list[subprocess.Popen]:
    from medsyn_site.health import check_worker_queue
    from medsyn_site.stack import BASE_DIR, celery_worker_command

    procs = []
    for number in range(count):
        var = root / f"host-{count}-{number}"
        var.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MEDSYN_VAR_DIR": str(var), "PYTHONUNBUFFERED": "1"}
        log = open(var / "worker.log", "ab")  # noqa: SIM115 - held by the child
        procs.append(subprocess.Popen(
            celery_worker_command(["api"], f"host{number}", pool="threads", concurrency=1, host=f"bench{count}"),
            env=env, cwd=BASE_DIR, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        detail = check_worker_queue("api").detail
        if all(f"host{number}@bench{count}" in detail for number in range(count)):
            return procs
        time.sleep(0.3)
    raise SystemExit(f"workers not ready; see {root}/host-{count}-*/worker.log")


def workers_stop(procs: list[subprocess.Popen]) -> None:
    from medsyn_site.stack import process_group_stop

    for proc in procs:
        process_group_stop(proc.pid, timeout=20)
    time.sleep(13)  # their heartbeats expire (WORKER_HEARTBEAT_TTL_SECONDS), so the next fleet's readiness is its own


def seed() -> None:
    from generation.services import prompt_templates_ensure
    from graph.importers import generic_payload
    from graph.services import graph_import
    from graph.store import get_graph_store
    from tests.generation.conftest import REAL_NOTE_TEXTS, TINY_GRAPH_ROWS
    from tests.generation.factories import NoteFactory

    path = Path(os.environ["MEDSYN_VAR_DIR"]) / "graph.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in TINY_GRAPH_ROWS), encoding="utf-8")
    graph_import(source="bench", files=[path], parse=lambda: generic_payload(path), store=get_graph_store())
    for category, texts in REAL_NOTE_TEXTS.items():
        for number in range(3):
            NoteFactory(text=texts[0].format(n=number + 1), icd_code=category, split="train")
    prompt_templates_ensure()


def job_run(config, items: int, seed_value: int) -> tuple[float, object]:
    from generation.jobs import PlanRequest, do_create_job
    from generation.models import GenerationJob

    job = do_create_job(request=PlanRequest(categories=["J06", "I10"], budget=items, allocation="uniform",
                                            seed=seed_value), model_config=config, actor=None)
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        job = GenerationJob.objects.get(pk=job.pk)
        if job.finished:
            break
        time.sleep(0.2)
    if job.status != "done":
        raise SystemExit(f"job {job.pk} ended {job.status}: {job.error}")
    return (job.finished_at - job.started_at).total_seconds(), job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=240)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", default="1,2,4")
    args = parser.parse_args()
    root = bench_services_start(graph=True)
    seed()
    from generation.models import ModelConfig, Note
    from medsyn_site.core.chunks import chunks_by_host

    server = LatencyServer(args.latency)
    config = ModelConfig.objects.create(name="fleet-bench", backend=ModelConfig.Backend.OPENAI, api_model="fake",
                                        base_url=server.url, concurrency=args.concurrency, max_retries=1,
                                        timeout_seconds=30)
    from generation.jobs import chunk_size_for

    print(f"one job of {args.items} items, {args.latency * 1000:.0f} ms per request, {args.concurrency} requests in "
          f"flight per worker (chunks of {chunk_size_for(config)} items), on {os.cpu_count()} cores")
    print(f"{'workers':>8} {'seconds':>8} {'items/s':>8} {'ratio':>6}  chunks per host")
    base = None
    for count in (int(value) for value in args.workers.split(",")):
        procs = workers_start(count, root)
        served_before = server.served
        try:
            seconds, job = job_run(config, args.items, seed_value=count)
        finally:
            workers_stop(procs)
        rate = job.progress_done / seconds
        base = base or rate
        notes = Note.objects.filter(metadata__job_id=job.pk).count()
        requests = server.served - served_before
        assert notes == job.ok == job.items.filter(status="done").count(), "an item ended twice or not at all"
        assert requests == job.ok + job.failed, f"{requests} requests for {job.ok + job.failed} items"
        hosts = ", ".join(f"{host['host']}: {host['done']}" for host in chunks_by_host(job))
        print(f"{count:>8} {seconds:>8.1f} {rate:>8.1f} {rate / base:>5.2f}x  {hosts}", flush=True)


if __name__ == "__main__":
    main()
