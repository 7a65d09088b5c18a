"""The OpenAI-compatible backend keeps up to config.concurrency requests in flight, over real HTTP.

The server is the suite's fake OpenAI server (tests/generation/conftest.py) with a handler that also counts the
requests in flight, holds each one for a while, and scripts faults per prompt: with requests running at once, the
conftest's fault queue (taken in arrival order) would not say which item gets which fault. Nothing here measures
time: concurrency is asserted by counting requests in flight on the server.
"""

from __future__ import annotations

import io
import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

from generation.backends import GenerationRequest, GenerationResult
from generation.backends.openai_backend import OpenAIBackend
from tests.generation.conftest import FakeOpenAIServer, _handler_for, serving_on_loopback
from tests.generation.test_openai_backend import api_config


@dataclass
class CountingServer(FakeOpenAIServer):
    """FakeOpenAIServer that counts requests in flight, holds each for latency seconds and fails per prompt.

    gather: a request first waits (up to gather_timeout) until that many are in flight at once, so that the
    peak reached does not depend on how fast the client threads happen to start on a loaded machine.
    """

    latency: float = 0.3
    gather: int = 0
    gather_timeout: float = 5.0
    in_flight: int = 0
    max_in_flight: int = 0
    prompt_faults: dict[str, deque] = field(default_factory=dict)  # user prompt -> status codes, one per attempt
    always_failing: dict[str, int] = field(default_factory=dict)  # user prompt -> status code on every attempt
    attempts: dict[str, int] = field(default_factory=dict)  # user prompt -> requests received
    changed: threading.Condition = field(default_factory=threading.Condition)


def _counting_handler(state: CountingServer) -> type:
    base = _handler_for(state)

    class Handler(base):
        def do_POST(self) -> None:
            raw = self.rfile.read(int(self.headers["Content-Length"]))
            user = json.loads(raw)["messages"][-1]["content"]
            with state.changed:
                state.in_flight += 1
                state.max_in_flight = max(state.max_in_flight, state.in_flight)
                state.attempts[user] = state.attempts.get(user, 0) + 1
                state.changed.notify_all()
                if state.gather:
                    state.changed.wait_for(lambda: state.in_flight >= state.gather, timeout=state.gather_timeout)
            try:
                time.sleep(state.latency)
                status = state.always_failing.get(user)
                if status is None and state.prompt_faults.get(user):
                    status = state.prompt_faults[user].popleft()
                if status is not None:
                    state.requests.append({"path": self.path, "body": json.loads(raw)})
                    self._send(status, json.dumps({"error": {"message": f"injected {status}"}}).encode())
                    return
                self.rfile = io.BytesIO(raw)  # the conftest handler reads the body again and answers the echo
                super().do_POST()
            finally:
                with state.changed:
                    state.in_flight -= 1
                    state.changed.notify_all()

    return Handler


@pytest.fixture
def counting_server() -> Iterator[CountingServer]:
    state = CountingServer()
    with serving_on_loopback(state, _counting_handler(state)):
        yield state


def prompts(count: int) -> list[GenerationRequest]:
    return [GenerationRequest(key=f"item-{i}", system="", user=f"Жалобы {i}") for i in range(count)]


def assert_in_request_order(results: list[GenerationResult], requests: list[GenerationRequest]) -> None:
    assert [result.key for result in results] == [request.key for request in requests]


def test_eight_requests_run_four_at_a_time_and_come_back_in_request_order(counting_server):
    counting_server.gather = 4
    requests = prompts(8)

    results = OpenAIBackend(api_config(counting_server.url, concurrency=4, timeout_seconds=10)).generate(requests)

    assert counting_server.max_in_flight == 4
    assert len(counting_server.requests) == 8
    assert_in_request_order(results, requests)
    assert [result.text for result in results] == [f"Ответ на: {request.user}" for request in requests]
    assert all(result.ok and result.attempts == 1 for result in results)


def test_fewer_requests_than_the_concurrency_use_only_as_many_connections(counting_server):
    counting_server.gather = 3
    requests = prompts(3)

    results = OpenAIBackend(api_config(counting_server.url, concurrency=16, timeout_seconds=10)).generate(requests)

    assert counting_server.max_in_flight == 3
    assert_in_request_order(results, requests)
    assert all(result.ok for result in results)


def test_concurrency_one_is_one_request_at_a_time(counting_server):
    counting_server.latency = 0.05
    requests = prompts(4)

    results = OpenAIBackend(api_config(counting_server.url, concurrency=1, timeout_seconds=10)).generate(requests)

    assert counting_server.max_in_flight == 1
    assert_in_request_order(results, requests)
    assert [result.text for result in results] == [f"Ответ на: {request.user}" for request in requests]


def test_a_429_then_200_is_retried_within_the_batch(counting_server):
    counting_server.latency = 0.05
    requests = prompts(4)
    counting_server.prompt_faults["Жалобы 2"] = deque([429])

    results = OpenAIBackend(api_config(counting_server.url, concurrency=4, timeout_seconds=10)).generate(requests)

    assert_in_request_order(results, requests)
    assert all(result.ok for result in results), [result.error for result in results]
    assert [result.attempts for result in results] == [1, 1, 2, 1]
    assert results[2].text == "Ответ на: Жалобы 2"
    assert counting_server.attempts["Жалобы 2"] == 2
    assert counting_server.max_in_flight <= 4


def test_a_request_that_always_fails_fails_alone(counting_server):
    counting_server.latency = 0.05
    requests = prompts(6)
    counting_server.always_failing["Жалобы 1"] = 500
    counting_server.always_failing["Жалобы 4"] = 400

    results = OpenAIBackend(api_config(counting_server.url, concurrency=4, max_retries=2,
                                       timeout_seconds=10)).generate(requests)

    assert_in_request_order(results, requests)
    assert results[1].error == "gave up after 3 attempt(s): HTTP 500" and results[1].attempts == 3
    assert results[4].error.startswith("BadRequestError") and results[4].attempts == 1
    assert (counting_server.attempts["Жалобы 1"], counting_server.attempts["Жалобы 4"]) == (3, 1)
    others = [results[i] for i in (0, 2, 3, 5)]
    assert all(result.ok and result.attempts == 1 for result in others)
    assert [result.text for result in others] == [f"Ответ на: Жалобы {i}" for i in (0, 2, 3, 5)]
    assert counting_server.max_in_flight <= 4


class RaisingBackend(OpenAIBackend):
    """A bug in one call (not an API error) must cost that item only."""

    def _call(self, request: GenerationRequest):
        if request.key == "item-2":
            raise RuntimeError("bug in the call")
        return super()._call(request)


@pytest.mark.parametrize("concurrency", [1, 4])
def test_an_unexpected_exception_becomes_a_failed_result_of_that_item(counting_server, concurrency):
    counting_server.latency = 0.01
    requests = prompts(5)

    results = RaisingBackend(api_config(counting_server.url, concurrency=concurrency)).generate(requests)

    assert_in_request_order(results, requests)
    assert results[2].error == "RuntimeError: bug in the call" and not results[2].ok
    assert all(results[i].ok for i in (0, 1, 3, 4))


def test_an_empty_batch_gives_no_results(counting_server):
    assert OpenAIBackend(api_config(counting_server.url, concurrency=4)).generate([]) == []
    assert counting_server.requests == []


def test_an_interrupted_batch_does_not_retry(counting_server):
    counting_server.latency = 0.01
    counting_server.always_failing["Жалобы 0"] = 503
    stop = threading.Event()
    stop.set()
    slept: list[float] = []
    backend = OpenAIBackend(api_config(counting_server.url, concurrency=4), sleep=slept.append)

    result = backend._complete(prompts(1)[0], stop)

    assert result.error == "interrupted after 1 attempt(s): HTTP 503"
    assert counting_server.attempts["Жалобы 0"] == 1 and slept == []
