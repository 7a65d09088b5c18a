"""OpenAI-compatible chat completions (OpenAI, vLLM, llama.cpp server) with our own retry loop.

The client's own retries are off (max_retries=0) so that every attempt is logged and counted here.
Retried: 429, 5xx, timeouts and connection errors, with capped exponential backoff plus jitter
(a Retry-After header, when sent, is honoured up to the cap). Not retried: other 4xx and malformed
responses; those end the item with an error and the batch goes on.

Concurrency: generate() runs the requests of one batch on a thread pool of at most config.concurrency threads
sharing one client (the sync client and its connection pool are thread-safe), so at most that many requests are
in flight; each keeps its own retry loop and backoff. The pool lives for one generate() call only: the job loop
checks the cost cap between batches, and nothing of a batch is still running when it does; a watch, given each
result as it comes back (in request order), may stop the rest of the batch (a cancel).
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import openai
from django.conf import settings

from .base import GenerationRequest, GenerationResult, GenerationWatch, token_cost

if TYPE_CHECKING:
    from generation.models import ModelConfig

logger = logging.getLogger("medsyn.generation")


class ResponseMalformedError(Exception):
    """The server answered 2xx but not with a usable chat completion."""


def backoff_delay(attempt: int, *, initial: float, cap: float, rng: random.Random,
                  retry_after: float | None = None) -> float:
    """Seconds to wait before retry number attempt (1-based): initial * 2**(attempt-1), jittered to 50-100%, capped."""
    if retry_after is not None:
        return min(cap, max(0.0, retry_after))
    return min(cap, initial * 2 ** (attempt - 1)) * (0.5 + rng.random() / 2)


def _retry_after(error: openai.APIStatusError) -> float | None:
    raw = error.response.headers.get("retry-after") if error.response is not None else None
    try:
        return float(raw) if raw is not None else None
    except ValueError:
        return None


def _retry_reason(error: Exception) -> str | None:
    """Why error is worth another attempt, or None when it is not."""
    if isinstance(error, openai.APITimeoutError):
        return "timeout"
    if isinstance(error, openai.APIConnectionError):
        return "connection error"
    if isinstance(error, openai.APIStatusError) and (error.status_code == 429 or error.status_code >= 500):
        return f"HTTP {error.status_code}"
    return None


def _completion_text(response: Any) -> tuple[str, int, int]:
    """Text, prompt tokens and completion tokens of a completion; ResponseMalformedError when unusable."""
    if isinstance(response, str):
        raise ResponseMalformedError(f"not a JSON completion: {response[:200]!r}")
    choices = getattr(response, "choices", None)
    if not choices:
        raise ResponseMalformedError("no choices in the response")
    message = getattr(choices[0], "message", None)
    content = getattr(message, "content", None)
    if not isinstance(content, str) or not content.strip():
        raise ResponseMalformedError("empty message content in the response")
    usage = getattr(response, "usage", None)
    return content.strip(), int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0)
                                                                                or 0)


def _worker_count(config: ModelConfig, requests: int) -> int:
    """Threads for a batch of requests: config.concurrency (at least 1), never more than there are requests."""
    return max(1, min(config.concurrency or 1, requests))


@functools.lru_cache(maxsize=32)
def client_for(base_url: str, api_key: str, timeout: float) -> openai.OpenAI:
    """One client per endpoint, key and timeout, kept by the process: making one costs about a quarter of a second
    (its TLS context), which a job in chunks would otherwise pay per chunk. The client and its connection pool are
    thread-safe; its own retries are off (this module retries)."""
    return openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout, max_retries=0)


class OpenAIBackend:
    """Up to config.concurrency requests of a batch in flight at once, each with its own retries."""

    def __init__(self, config: ModelConfig, *, api_key: str | None = None,
                 sleep: Callable[[float], None] = time.sleep, rng: random.Random | None = None) -> None:
        self.config = config
        self.sleep = sleep
        self.rng = rng or random.Random()
        self.client = client_for(config.base_url or settings.OPENAI_BASE_URL,
                                 api_key or settings.OPENAI_API_KEY or "not-set", float(config.timeout_seconds))

    def generate(self, requests: list[GenerationRequest], watch: GenerationWatch | None = None
                 ) -> list[GenerationResult]:
        """One result per request, in request order; an unexpected exception becomes that item's failure. A watch
        is given each result in request order as the calls come back (GenerationCancelled from it stops the rest)."""
        workers = _worker_count(self.config, len(requests))
        if workers <= 1:  # no thread for one request or concurrency 1: the serial path stays as it was
            return [self._watched(self._complete_guarded(request, None), watch, done)
                    for done, request in enumerate(requests, start=1)]
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai-request")
        interrupted = False
        try:
            futures = [pool.submit(self._complete_guarded, request, stop) for request in requests]
            return [self._watched(self._outcome(future, request), watch, done)
                    for done, (future, request) in enumerate(zip(futures, requests, strict=True), start=1)]
        except BaseException:
            # The caller is being interrupted (KeyboardInterrupt, SystemExit at a worker shutdown, a cancel from the
            # watch): requests not yet started must not start and those in flight must not retry; their results
            # are dropped, so the items stay pending and run on the next delivery, as an interrupted serial call
            # would leave them.
            interrupted = True
            stop.set()
            raise
        finally:
            # Normally every future is done here and this returns at once; interrupted, it does not wait for the
            # requests in flight (each ends within timeout_seconds).
            pool.shutdown(wait=not interrupted, cancel_futures=interrupted)

    @staticmethod
    def _watched(result: GenerationResult, watch: GenerationWatch | None, done: int) -> GenerationResult:
        if watch is not None:
            watch.result(result)
            watch.progress(done)
        return result

    def _outcome(self, future: Future[GenerationResult], request: GenerationRequest) -> GenerationResult:
        try:
            return future.result()
        except Exception as error:  # _complete_guarded catches everything already; the last net so no item is lost
            return self._failure(request, f"{type(error).__name__}: {error}", 1, time.perf_counter())

    def _complete_guarded(self, request: GenerationRequest, stop: threading.Event | None) -> GenerationResult:
        """_complete, with an exception it did not expect turned into a failed result for this item only.

        Raised in a pool thread, it would surface in generate() and throw away the other results of the batch.
        """
        started = time.perf_counter()
        try:
            return self._complete(request, stop)
        except Exception as error:
            logger.exception("model call raised", extra={"key": request.key, "model": self.config.api_model})
            return self._failure(request, f"{type(error).__name__}: {error}", 1, started)

    def _call(self, request: GenerationRequest) -> Any:
        messages = [{"role": "user", "content": request.user}]
        if request.system:
            messages.insert(0, {"role": "system", "content": request.system})
        return self.client.chat.completions.create(
            model=self.config.api_model, messages=messages, temperature=self.config.temperature,
            top_p=self.config.top_p, max_tokens=self.config.max_new_tokens,
        )

    def _complete(self, request: GenerationRequest, stop: threading.Event | None = None) -> GenerationResult:
        started = time.perf_counter()
        attempts = 0
        while True:
            attempts += 1
            try:
                text, prompt_tokens, completion_tokens = _completion_text(self._call(request))
            except (ResponseMalformedError, ValueError) as error:  # ValueError: a JSON body that does not parse
                return self._failure(request, f"malformed response: {error}", attempts, started)
            except openai.OpenAIError as error:
                reason = _retry_reason(error)
                if reason is None:
                    return self._failure(request, f"{type(error).__name__}: {error}", attempts, started)
                if attempts > self.config.max_retries:
                    return self._failure(request, f"gave up after {attempts} attempt(s): {reason}", attempts,
                                         started)
                if stop is not None and stop.is_set():  # generate() was interrupted: nobody waits for this item
                    return self._failure(request, f"interrupted after {attempts} attempt(s): {reason}", attempts,
                                         started)
                delay = backoff_delay(
                    attempts, initial=self.config.backoff_initial_seconds, cap=self.config.backoff_max_seconds,
                    rng=self.rng, retry_after=_retry_after(error) if isinstance(error, openai.APIStatusError) else None,
                )
                logger.warning("model call retried", extra={
                    "key": request.key, "attempt": attempts, "reason": reason, "delay_s": round(delay, 3),
                    "model": self.config.api_model,
                })
                self.sleep(delay)
                continue
            return GenerationResult(
                key=request.key, text=text, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                latency_s=round(time.perf_counter() - started, 4), attempts=attempts,
                cost=token_cost(prompt_tokens + completion_tokens, self.config.price_per_1k_tokens),
            )

    def _failure(self, request: GenerationRequest, error: str, attempts: int, started: float) -> GenerationResult:
        logger.warning("model call failed", extra={"key": request.key, "attempts": attempts, "error": error})
        return GenerationResult(key=request.key, error=error, attempts=attempts,
                                latency_s=round(time.perf_counter() - started, 4))
