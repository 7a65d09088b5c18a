"""The OpenAI-compatible backend over real HTTP against a local server with injected faults."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from generation.backends import GenerationRequest, backend_for
from generation.backends.openai_backend import OpenAIBackend, backoff_delay
from generation.models import ModelConfig


def api_config(url: str, **overrides) -> ModelConfig:
    """An API model configuration; one request at a time unless overridden, since these tests script the fake
    server's faults in the order requests arrive (test_openai_concurrency covers requests in flight together)."""
    values = {"name": "fake", "backend": "openai", "base_url": url, "api_model": "fake-gpt", "temperature": 0.2,
              "top_p": 0.9, "max_new_tokens": 64, "timeout_seconds": 0.5, "max_retries": 3,
              "backoff_initial_seconds": 0.01, "backoff_max_seconds": 0.05, "concurrency": 1, **overrides}
    return ModelConfig(**values)


def requests(count: int = 1) -> list[GenerationRequest]:
    return [GenerationRequest(key=f"item-{i}", system="Отвечай по-русски.", user=f"Жалобы {i}") for i in range(count)]


def test_success_records_text_usage_cost_and_sends_the_parameters(openai_server):
    backend = backend_for(api_config(openai_server.url, price_per_1k_tokens=Decimal("0.5")))

    [result] = backend.generate(requests())

    assert result.ok and result.text == "Ответ на: Жалобы 0"
    assert (result.prompt_tokens, result.completion_tokens, result.attempts) == (11, 7, 1)
    assert result.cost == pytest.approx(18 * 0.5 / 1000)
    body = openai_server.requests[0]["body"]
    assert body["model"] == "fake-gpt" and body["max_tokens"] == 64
    assert (body["temperature"], body["top_p"]) == (0.2, 0.9)
    assert body["messages"] == [{"role": "system", "content": "Отвечай по-русски."},
                                {"role": "user", "content": "Жалобы 0"}]


@pytest.mark.parametrize("fault", [("status", 429), ("status", 500), ("status", 503), ("sleep", 1.0)],
                         ids=["429", "500", "503", "timeout"])
def test_a_transient_fault_is_retried_then_succeeds(openai_server, fault):
    openai_server.script(fault)

    [result] = OpenAIBackend(api_config(openai_server.url)).generate(requests())

    assert result.ok, result.error
    assert result.attempts == 2
    assert len(openai_server.requests) == 2


def test_persistent_500_is_recorded_as_a_failure_after_the_retries(openai_server):
    openai_server.persistent_status = 500
    slept: list[float] = []
    backend = OpenAIBackend(api_config(openai_server.url, max_retries=3), sleep=slept.append,
                            rng=random.Random(0))

    [result] = backend.generate(requests())

    assert not result.ok
    assert result.error == "gave up after 4 attempt(s): HTTP 500"
    assert len(openai_server.requests) == 4
    assert len(slept) == 3 and all(0 < delay <= 0.05 for delay in slept)


@pytest.mark.parametrize(("fault", "message"), [(("malformed",), "malformed response"),
                                                (("no_choices",), "no choices in the response")])
def test_a_malformed_answer_fails_that_item_only(openai_server, fault, message):
    openai_server.script(fault)

    first, second = OpenAIBackend(api_config(openai_server.url)).generate(requests(2))

    assert not first.ok and message in first.error and first.attempts == 1
    assert second.ok and second.text == "Ответ на: Жалобы 1"
    assert len(openai_server.requests) == 2


def test_a_client_error_is_not_retried(openai_server):
    openai_server.script(("status", 400))

    [result] = OpenAIBackend(api_config(openai_server.url)).generate(requests())

    assert result.error.startswith("BadRequestError")
    assert len(openai_server.requests) == 1


def test_an_unreachable_server_is_a_connection_failure():
    [result] = OpenAIBackend(api_config("http://127.0.0.1:9/v1", max_retries=1)).generate(requests())
    assert result.error == "gave up after 2 attempt(s): connection error"


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    rng = random.Random(1)
    delays = [backoff_delay(attempt, initial=1.0, cap=10.0, rng=rng) for attempt in range(1, 7)]
    assert all(0.5 * min(10, 2 ** (a - 1)) <= d <= min(10, 2 ** (a - 1)) for a, d in enumerate(delays, start=1))
    assert backoff_delay(1, initial=1.0, cap=10.0, rng=rng, retry_after=30) == 10.0
