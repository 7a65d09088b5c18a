"""Generation fixtures: a real OpenAI-compatible HTTP server with scripted faults, and small data files."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

DATA_DIR = Path(__file__).parent / "data"


@dataclass
class FakeOpenAIServer:
    """Answers POST /v1/chat/completions; each request takes the next scripted fault, then succeeds.

    Faults: ("status", code), ("sleep", seconds) before answering, ("malformed",), ("no_choices",).
    """

    url: str = ""
    faults: deque = field(default_factory=deque)
    persistent_status: int | None = None
    requests: list[dict] = field(default_factory=list)

    def script(self, *faults: tuple) -> None:
        self.faults.extend(faults)


def _handler_for(server_state: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self) -> None:
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            server_state.requests.append({"path": self.path, "body": payload})
            if self.path != "/v1/chat/completions":
                self._send(404, b'{"error": {"message": "not found"}}')
                return
            fault = server_state.faults.popleft() if server_state.faults else None
            if server_state.persistent_status is not None:
                fault = ("status", server_state.persistent_status)
            if fault and fault[0] == "sleep":
                time.sleep(fault[1])
            elif fault and fault[0] == "status":
                self._send(fault[1], json.dumps({"error": {"message": f"injected {fault[1]}"}}).encode())
                return
            elif fault and fault[0] == "malformed":
                self._send(200, b'{"id": "x", "choices": [')
                return
            elif fault and fault[0] == "no_choices":
                self._send(200, json.dumps({"id": "x", "object": "chat.completion", "created": 0,
                                            "model": payload["model"], "choices": []}).encode())
                return
            user = payload["messages"][-1]["content"]
            answer = {
                "id": f"cmpl-{len(server_state.requests)}", "object": "chat.completion", "created": 0,
                "model": payload["model"],
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": f"Ответ на: {user}"}}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            }
            try:
                self._send(200, json.dumps(answer, ensure_ascii=False).encode())
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                pass

    return Handler


@pytest.fixture
def openai_server():
    state = FakeOpenAIServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(state))
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def rumedtop3_file() -> Path:
    return DATA_DIR / "rumedtop3_sample.jsonl"


@pytest.fixture
def medsyn_csv_file() -> Path:
    return DATA_DIR / "medsyn_sample.csv"
