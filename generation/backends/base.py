"""The interface every generation backend implements, and the choice of backend for a ModelConfig."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from generation.models import ModelConfig


@dataclass(frozen=True)
class PlanInputs:
    """What a plan item put into its prompt (only the inputs its template uses), for a backend that writes without a
    prompt (template filling). seed makes that backend's choices: the same job seed and item give the same note."""

    language: str
    seed: str
    symptoms: tuple[str, ...] = ()
    code: str = ""  # the ICD-10 code and the disease's name: empty unless the prompt named them (prompt(code))
    disease: str = ""


@dataclass(frozen=True)
class GenerationRequest:
    """One prompt to complete. key identifies the item to the caller (a job item id, for example); inputs, the plan
    item's own inputs, are there for a generation job's requests (a model backend reads only the prompt)."""

    key: str
    system: str
    user: str
    inputs: PlanInputs | None = None


@dataclass(frozen=True)
class GenerationResult:
    """The outcome of one request: text on success, error otherwise. latency_s: from the start of its call or batch
    until its result was final."""

    key: str
    text: str = ""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    latency_s: float = 0.0
    attempts: int = 1
    cost: float | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class GenerationCancelled(Exception):
    """Raised by a GenerationWatch to stop a generate() call at once (the job was cancelled): generate() raises it
    too, and the requests without a result given to watch.result get none (their items stay pending)."""


class GenerationWatch:
    """What a generate() call tells its caller while it runs (generation jobs and symptom extraction subclass it).

    progress(done): how many of the call's requests are done, fractions of those under way included (the local
    backend: the share of max_new_tokens each row of the running batch has written, a row that ended counting 1);
    called often (every decoding step), so it decides itself how often to act. result(result): one request's final
    result, once, as soon as it is final (the local backend: a row that ended before the rest of its batch), and in
    any case before generate() returns. Either may raise GenerationCancelled; any other exception they raise
    fails the call with it."""

    def progress(self, done: float) -> None:
        return

    def result(self, result: GenerationResult) -> None:
        return


class GenerationBackend(Protocol):
    def generate(self, requests: list[GenerationRequest], watch: GenerationWatch | None = None
                 ) -> list[GenerationResult]:
        """Results in the order of requests; a failed item carries error instead of raising. With a watch, each
        result is also given to watch.result, once, as soon as it is final, and progress is reported to
        watch.progress; GenerationCancelled from the watch stops the call and is raised."""
        ...


def token_cost(tokens: int, price_per_1k_tokens: object | None) -> float | None:
    """Cost of tokens at an optional price per 1000 tokens."""
    if price_per_1k_tokens is None:
        return None
    return round(tokens * float(price_per_1k_tokens) / 1000, 6)


def backend_for(config: ModelConfig) -> GenerationBackend:
    """The backend that serves config; a local model is loaded once per process and reused; the template baseline
    needs no model."""
    if config.backend == "openai":
        from .openai_backend import OpenAIBackend

        return OpenAIBackend(config)
    if config.backend == "local":
        from .local_backend import LocalBackend

        return LocalBackend(config)
    if config.backend == "template":
        from .template_backend import TemplateBackend

        return TemplateBackend(config)
    raise ValueError(f"unknown backend {config.backend!r}")
