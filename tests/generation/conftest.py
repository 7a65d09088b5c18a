"""Generation fixtures: a real OpenAI-compatible HTTP server with scripted faults, and small data files."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.medsyn_site.core.s3_server import s3, s3_bucket, s3_server  # noqa: F401 - the S3 server of test_storage

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
    replies: deque = field(default_factory=deque)  # scripted answer texts, used before the default echo
    latency_s: float = 0.0  # every request waits this long before its answer (a model's time to write)
    numbered: bool = False  # answers end with the request's number, so that no two notes are the same text
    lock: threading.Lock = field(default_factory=threading.Lock)

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
            with server_state.lock:
                server_state.requests.append({"path": self.path, "body": payload})
                number = len(server_state.requests)
            if self.path != "/v1/chat/completions":
                self._send(404, b'{"error": {"message": "not found"}}')
                return
            fault = server_state.faults.popleft() if server_state.faults else None
            if server_state.latency_s:
                time.sleep(server_state.latency_s)
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
                             "message": {"role": "assistant",
                                         "content": server_state.replies.popleft() if server_state.replies
                                         else f"Ответ на: {user}" + (f" (№ {number})"
                                                                     if server_state.numbered else "")}}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
            }
            try:
                self._send(200, json.dumps(answer, ensure_ascii=False).encode())
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout)
                pass

    return Handler


@contextmanager
def serving_on_loopback(state: FakeOpenAIServer, handler: type) -> Iterator[FakeOpenAIServer]:
    """Serve handler on a free 127.0.0.1 port in a thread; state.url is its /v1 base URL."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def openai_server():
    state = FakeOpenAIServer()
    with serving_on_loopback(state, _handler_for(state)):
        yield state


@pytest.fixture
def rumedtop3_file() -> Path:
    return DATA_DIR / "rumedtop3_sample.jsonl"


@pytest.fixture
def medsyn_csv_file() -> Path:
    return DATA_DIR / "medsyn_sample.csv"


TINY_GRAPH_ROWS = [
    {"kind": "node", "label": "Category", "key": "J06",
     "props": {"name": "Острые инфекции верхних дыхательных путей", "n_examples": 3, "n_notes": 3}},
    {"kind": "node", "label": "Category", "key": "I10", "props": {"name": "Эссенциальная гипертензия",
                                                                  "n_examples": 2, "n_notes": 2}},
    *({"kind": "node", "label": "Symptom", "key": name, "props": {"name": name}}
      for name in ("кашель", "насморк", "боль в горле", "лихорадка", "головная боль", "головокружение", "шум в ушах")),
    *({"kind": "edge", "type": "HAS_SYMPTOM", "from": {"label": "Category", "key": "J06"},
       "to": {"label": "Symptom", "key": name}, "source": "curated", "props": {"count": count}}
      for name, count in (("кашель", 5), ("насморк", 4), ("боль в горле", 3), ("лихорадка", 2))),
    *({"kind": "edge", "type": "HAS_SYMPTOM", "from": {"label": "Category", "key": "I10"},
       "to": {"label": "Symptom", "key": name}, "source": "curated", "props": {"count": count}}
      for name, count in (("головная боль", 5), ("головокружение", 3), ("шум в ушах", 1))),
]

REAL_NOTE_TEXTS = {
    "J06": ["Пациент {n} жалуется на кашель с мокротой, насморк, заложенность носа, боль в горле при глотании, "
            "общую слабость и повышение температуры тела до тридцати восьми градусов в течение трёх дней. "
            "Заболел остро после переохлаждения, принимал жаропонижающие без эффекта, аппетит снижен, сон нарушен."],
    "I10": ["Пациентка {n} жалуется на головную боль в затылочной области, головокружение, шум в ушах, мелькание "
            "мушек перед глазами, повышение артериального давления до ста шестидесяти на сто миллиметров ртутного "
            "столба. Болеет около пяти лет, препараты принимает нерегулярно, ухудшение после стресса на работе."],
}


@pytest.fixture
def tiny_graph(request, settings, db, tmp_path):
    """A two-category graph (J06, I10) imported through graph's generic JSONL importer, on its own graph key; with
    the suite's Celery workers or a fleet of worker hosts, on the graph they read (settings' own key: a job's worker
    samples its plan there), emptied before and dropped after."""
    import dataclasses
    import uuid

    from graph.importers import generic_payload
    from graph.services import graph_import
    from graph.store import store_for

    if {"celery_workers", "fleet"} & set(request.fixturenames):  # worker processes read the settings' graph
        config = settings.GRAPH
        store_for(config).drop()
    else:
        config = dataclasses.replace(settings.GRAPH, database=f"medsyn_gen_{uuid.uuid4().hex[:10]}")
    settings.GRAPH = config
    store = store_for(config)
    path = tmp_path / "tiny_graph.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in TINY_GRAPH_ROWS), encoding="utf-8")
    graph_import(source="generation-test", files=[path], parse=lambda: generic_payload(path), store=store)
    yield store
    store.drop()


@pytest.fixture
def real_notes(db):
    """Real example notes (over 30 words) for J06 and I10."""
    from tests.generation.factories import NoteFactory

    return [NoteFactory(text=texts[0].format(n=n + 1), icd_code=category, split="train")
            for category, texts in REAL_NOTE_TEXTS.items() for n in range(3 if category == "J06" else 2)]


@pytest.fixture
def tiny_model_config(db, tiny_model_dir):
    from generation.models import ModelConfig

    return ModelConfig.objects.create(name="tiny-local", backend=ModelConfig.Backend.LOCAL,
                                      model_path=str(tiny_model_dir), temperature=1.0, top_p=1.0, max_new_tokens=8,
                                      batch_size=4)


@pytest.fixture(scope="session")
def scripted_model_dir(tiny_model_dir, tmp_path_factory) -> Path:
    """The tiny model rewired to write a fixed chain greedily: after ":" (a lead-in's end) or the end of an Alpaca
    prompt, "н", "а", a blank line, then "т", ":" and round again. Attention and MLP outputs are zeroed, so each next
    token depends on the last one only: one-hot embeddings, and the output row of each successor points at its
    predecessor's dimension."""
    import itertools

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from generation.prompts import alpaca_wrap

    target = tmp_path_factory.mktemp("scripted-model")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.add_tokens(["\n\n"])
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
    model.resize_token_embeddings(len(tokenizer))
    [colon], [en], [a], [te] = (tokenizer(text)["input_ids"] for text in (":", "н", "а", "т"))
    chain = [colon, en, a, tokenizer.convert_tokens_to_ids("\n\n"), te, colon]
    alpaca_end = tokenizer(alpaca_wrap("", ""))["input_ids"][-1]
    assert alpaca_end not in chain
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.model.embed_tokens.weight.zero_()
        model.lm_head.weight.zero_()
        for dimension, (token, successor) in enumerate([*itertools.pairwise(chain), (alpaca_end, en)]):
            model.model.embed_tokens.weight[token, dimension] = 1.0
            model.lm_head.weight[successor, dimension] = 10.0
    model.save_pretrained(target, safe_serialization=True)
    tokenizer.save_pretrained(target)
    return target
