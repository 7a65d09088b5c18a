"""OpenAI-compatible backend: serial versus concurrent requests against a local fake server with fixed latency.

Starts a fake OpenAI-compatible server on 127.0.0.1 (a free port) that answers every chat completion after
--latency seconds, then sends --requests requests through OpenAIBackend the way a generation job does (batches of
batch_size requests, each batch finished before the next starts), once per concurrency in --concurrency (1 is the
serial baseline; batch_size is the concurrency unless --batch-size is given). Prints wall time, requests/s, the
speed-up against serial and the most requests the server saw in flight; checks every result is in request order
and answers its own prompt. No database, no other service; the server stops when the script ends.

Run: .venv/bin/python bench/bench_openai_concurrency.py [--requests 200] [--latency 0.2] [--concurrency 1,8,16]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medsyn_site.settings.test")
os.environ.setdefault("LOG_LEVEL", "WARNING")

import django  # noqa: E402

django.setup()  # ModelConfig is a model class; nothing here touches the database

from generation.backends import GenerationRequest  # noqa: E402
from generation.backends.openai_backend import OpenAIBackend  # noqa: E402
from generation.models import ModelConfig  # noqa: E402


class FakeServer:
    """Answers POST /v1/chat/completions with an echo of the prompt after latency seconds; counts requests in flight."""

    def __init__(self, latency: float) -> None:
        self.latency = latency
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        self.served = 0
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FakeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def reset(self) -> None:
        with self.lock:
            self.max_in_flight = self.served = 0

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real API server: connection setup is not measured
            # Headers and body go out in two writes; with Nagle on, the body waits for the client's delayed ACK
            # (~40 ms on Linux), which would be measured as latency of the backend.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: object) -> None:
                return

            def do_POST(self) -> None:
                payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.latency)
                    answer = {
                        "id": "cmpl-bench", "object": "chat.completion", "created": 0, "model": payload["model"],
                        "choices": [{"index": 0, "finish_reason": "stop", "message": {
                            "role": "assistant", "content": f"Ответ на: {payload['messages'][-1]['content']}"}}],
                        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
                    }
                    body = json.dumps(answer, ensure_ascii=False).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                finally:
                    with server.lock:
                        server.in_flight -= 1
                        server.served += 1

        return Handler


def run(server: FakeServer, *, requests: int, concurrency: int, batch_size: int) -> dict:
    """Send requests in job-sized batches; wall time and checks of one run."""
    config = ModelConfig(name="bench", backend="openai", base_url=server.url, api_model="bench-gpt",
                         max_new_tokens=64, timeout_seconds=30, max_retries=2, backoff_initial_seconds=0.05,
                         backoff_max_seconds=0.5, concurrency=concurrency, batch_size=batch_size)
    backend = OpenAIBackend(config, api_key="bench")
    prompts = [GenerationRequest(key=str(i), system="", user=f"Жалобы {i}") for i in range(requests)]
    server.reset()
    started = time.perf_counter()
    results = []
    for start in range(0, requests, batch_size):  # as jobs._batches_run: a batch ends before the next starts
        results.extend(backend.generate(prompts[start:start + batch_size]))
    wall = time.perf_counter() - started
    in_order = [r.key for r in results] == [p.key for p in prompts]
    answered = all(r.ok and r.text == f"Ответ на: {p.user}" for r, p in zip(results, prompts, strict=True))
    return {"concurrency": concurrency, "batch_size": batch_size, "wall_s": wall, "rps": requests / wall,
            "max_in_flight": server.max_in_flight, "served": server.served, "ok": in_order and answered}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--latency", type=float, default=0.2, help="seconds per request on the server")
    parser.add_argument("--concurrency", default="1,8,16", help="comma-separated; 1 is the serial baseline")
    parser.add_argument("--batch-size", type=int, default=0, help="requests per generate() call; 0: the concurrency")
    args = parser.parse_args()
    if not 1 <= args.requests <= 5000:
        parser.error("--requests must be 1..5000 (the serial run alone takes requests x latency)")
    levels = sorted({int(level) for level in args.concurrency.split(",")} | {1})

    print(f"{args.requests} requests, {args.latency * 1000:.0f} ms server latency each, CPUs: {os.cpu_count()}")
    print(f"{'concurrency':>11} {'batch':>5} {'wall s':>8} {'req/s':>8} {'vs serial':>9} {'max in flight':>13}  ok")
    failed = False
    with FakeServer(args.latency) as server:
        serial_wall = None
        for level in levels:
            row = run(server, requests=args.requests, concurrency=level, batch_size=args.batch_size or level)
            serial_wall = serial_wall or row["wall_s"]
            failed |= not row["ok"] or row["served"] != args.requests or row["max_in_flight"] > level
            print(f"{row['concurrency']:>11} {row['batch_size']:>5} {row['wall_s']:>8.2f} {row['rps']:>8.1f} "
                  f"{serial_wall / row['wall_s']:>8.1f}x {row['max_in_flight']:>13}  {'yes' if row['ok'] else 'NO'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
