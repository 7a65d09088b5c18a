"""Local transformers models: loaded once per process, batched generation with left padding.

Requests are sorted by prompt length and batched so that each batch pads little (length_batches), and results go
back in input order.
Nothing is ever downloaded from a hub: every load is local_files_only (HF_HUB_OFFLINE is the truth here), so
model_path is a directory holding one snapshot and ModelConfig.revision is provenance only. The one thing fetched is
a fine-tuned adapter from the deployment's own adapters storage (core.storage), into the model cache, checked by
SHA-256, when this host does not have it yet (adapter_local).

On a CPU the model computes in float32 whatever its files hold ("auto" dtype): the embedded caches are stored in
bfloat16, which is slower than float32 on CPUs in batches. A base model (prompt_format "completion") gets the
completion text of its prompt, no chat template; each sequence of a batch stops at its first blank line (its note
ends there) and the note is cut there (prompts.completion_cut).

A batch is followed at every decoding step (batch_follower): a row that has ended is handed over at once (a
generation job writes its note before the rest of the batch is done), the batch's share of max_new_tokens goes to
the caller's watch as progress, and a cancel from the watch stops the whole batch at that step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from generation.prompts import (
    alpaca_wrap,
    chat_messages,
    completion_cut,
    completion_ended,
    completion_lead_in,
    completion_text,
)
from medsyn_site.core.storage import adapters_storage, folder_fetch_addressed, storage_where

from .base import GenerationRequest, GenerationResult, GenerationWatch

if TYPE_CHECKING:
    from generation.models import ModelConfig

logger = logging.getLogger("medsyn.generation")


@dataclass(frozen=True)
class LoadKey:
    """What identifies a loaded model in the process cache."""

    model_path: str
    gguf_file: str
    adapter_path: str
    dtype: str
    device: str

    @classmethod
    def from_config(cls, config: ModelConfig) -> LoadKey:
        return cls(model_path=str(model_location(config.model_path)), gguf_file=config.gguf_file,
                   adapter_path=str(model_location(config.adapter_path)) if config.adapter_path else "",
                   dtype=config.dtype, device=config.device)


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    device: str


_loaded: dict[LoadKey, LoadedModel] = {}
_load_lock = threading.Lock()


def model_location(path: str) -> Path:
    """An absolute path as given; a relative one under settings.MODEL_CACHE_DIR."""
    location = Path(path).expanduser()
    return location if location.is_absolute() else Path(settings.MODEL_CACHE_DIR) / location


# Published adapters (a fine-tuning job's, core.storage.folder_publish_addressed) are named "adapters/<key>" in
# ModelConfig.adapter_path: a folder of the model cache, fetched there from the adapters storage by the first worker
# of a host that needs it (adapter_local).
ADAPTERS_FOLDER = "adapters"


def adapter_reference(key: str) -> str:
    """What a ModelConfig's adapter_path holds for the adapter published as key."""
    return f"{ADAPTERS_FOLDER}/{key}"


def adapter_local(path: Path) -> Path:
    """The adapter folder to load from path: as it is when it is on this host's disk; a published adapter missing
    from the model cache (MODEL_CACHE_DIR/adapters/<key>) is first fetched there from the adapters storage, every file
    checked against the SHA-256 of its manifest, which is checked against the key. FileNotFoundError when it is
    nowhere."""
    if path.is_dir() or path.parent != Path(settings.MODEL_CACHE_DIR) / ADAPTERS_FOLDER:
        return path
    storage = adapters_storage()
    started = time.perf_counter()
    try:
        folder_fetch_addressed(storage, path.name, path)
    except FileNotFoundError as error:
        raise FileNotFoundError(f"adapter not found: {path}, nor in the adapters storage "
                                f"({storage_where(storage, path.name)})") from error
    logger.info("adapter fetched", extra={"adapter": path.name, "from": storage_where(storage, path.name),
                                          "fetch_s": round(time.perf_counter() - started, 2)})
    return path


def device_choose(requested: str) -> str:
    import torch

    if requested == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return requested


def dtype_choose(requested: str, device: str) -> Any:
    import torch

    if requested == "auto":
        if device == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    return getattr(torch, requested)


def model_load(key: LoadKey) -> LoadedModel:
    """Load tokenizer, model and optional LoRA adapter from local files only (a published adapter is fetched into
    the model cache first: adapter_local)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    adapter = str(adapter_local(Path(key.adapter_path))) if key.adapter_path else ""
    for location in filter(None, (key.model_path, adapter)):
        if not Path(location).is_dir():
            raise FileNotFoundError(f"model directory not found: {location}")
    device = device_choose(key.device)
    options: dict[str, Any] = {"local_files_only": True}
    if key.gguf_file:
        options["gguf_file"] = key.gguf_file
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(key.model_path, **options)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(key.model_path, dtype=dtype_choose(key.dtype, device), **options)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, adapter)
    model.to(device)
    model.eval()
    logger.info("local model loaded", extra={"model_path": key.model_path, "adapter": key.adapter_path,
                                             "device": device, "load_s": round(time.perf_counter() - started, 2)})
    return LoadedModel(model=model, tokenizer=tokenizer, device=device)


def loaded_model(config: ModelConfig) -> LoadedModel:
    """The process-wide instance for config's model files, loaded on first use."""
    key = LoadKey.from_config(config)
    with _load_lock:
        if key not in _loaded:
            _loaded[key] = model_load(key)
        return _loaded[key]


def loaded_models_clear() -> None:
    """Forget every loaded model (frees memory; the next use loads again)."""
    with _load_lock:
        _loaded.clear()


class LocalBackend:
    def __init__(self, config: ModelConfig) -> None:
        self.config = config
        self.loaded = loaded_model(config)

    @property
    def prompt_format(self) -> str:
        return self.config.prompt_format

    @property
    def uses_completion(self) -> bool:
        return self.prompt_format == "completion"

    @property
    def uses_chat_template(self) -> bool:
        prompt_format = self.prompt_format
        return prompt_format == "chat" or (prompt_format == "auto" and bool(self.loaded.tokenizer.chat_template))

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        tokenizer = self.loaded.tokenizer
        if self.uses_completion:  # the tokenizer adds what the model expects first (Gemma: <bos>)
            return tokenizer(completion_text(request.system, request.user))["input_ids"]
        if self.uses_chat_template:
            encoded = tokenizer.apply_chat_template(chat_messages(request.system, request.user),
                                                    add_generation_prompt=True, tokenize=True, return_dict=True)
            return list(encoded["input_ids"])
        return tokenizer(alpaca_wrap(request.system, request.user))["input_ids"]

    def generate(self, requests: list[GenerationRequest], watch: GenerationWatch | None = None
                 ) -> list[GenerationResult]:
        """Results in input order. With a watch: each row's result as soon as the row ends (before the rest of its
        batch), the progress of the call at every decoding step, and GenerationCancelled from the watch stops the
        running batch at once (raised here; rows not yet given to watch.result get no result)."""
        prompts = [self.prompt_ids(request) for request in requests]
        results: dict[int, GenerationResult] = {}
        for batch in length_batches([len(prompt) for prompt in prompts], self.config.batch_size):
            results.update(self._generate_batch([requests[i] for i in batch], [prompts[i] for i in batch], batch,
                                                watch=watch, done_before=len(results)))
        return [results[index] for index in range(len(requests))]

    def _generate_batch(self, requests: list[GenerationRequest], prompts: list[list[int]], indexes: list[int], *,
                        watch: GenerationWatch | None = None, done_before: int = 0) -> dict[int, GenerationResult]:
        import torch
        from transformers import StoppingCriteriaList

        tokenizer, model = self.loaded.tokenizer, self.loaded.model
        started = time.perf_counter()
        results: dict[int, GenerationResult] = {}  # by row of this batch

        def row_ended(row: int, tokens: list[int]) -> None:
            results[row] = self._result(requests[row], prompts[row], tokens, round(time.perf_counter() - started, 4))
            if watch is not None:
                watch.result(results[row])

        def progress(done: float) -> None:
            if watch is not None:
                watch.progress(done_before + done)

        follower = None
        try:
            encoded = tokenizer.pad({"input_ids": prompts}, padding=True, return_tensors="pt").to(self.loaded.device)
            sampling = self.config.temperature > 0
            prompt_length = encoded["input_ids"].shape[1]
            text_ended = None
            if self.uses_completion:  # each row's note ends at its first blank line, so the batch stops early
                def text_ended(tokens: list[int]) -> bool:
                    return completion_ended(tokenizer.decode(tokens, skip_special_tokens=True))
            follower = batch_follower(prompt_length=prompt_length, max_new_tokens=self.config.max_new_tokens,
                                      stops={tokenizer.pad_token_id, *self._eos_ids()}, text_ended=text_ended,
                                      on_end=row_ended, on_progress=progress)
            with torch.inference_mode():
                output = model.generate(
                    **encoded, max_new_tokens=self.config.max_new_tokens, do_sample=sampling,
                    temperature=self.config.temperature if sampling else None,
                    top_p=self.config.top_p if sampling else None, pad_token_id=tokenizer.pad_token_id,
                    stopping_criteria=StoppingCriteriaList([follower]),
                )
        except Exception as error:  # one bad batch (out of memory, for example) must not lose the others
            if follower is not None and follower.raised is not None:
                raise follower.raised from error
            logger.exception("local batch failed", extra={"keys": [r.key for r in requests]})
            failure = f"{type(error).__name__}: {error}"
            latency = round(time.perf_counter() - started, 4)
            for row, request in enumerate(requests):
                if row not in results:
                    results[row] = GenerationResult(key=request.key, error=failure, latency_s=latency)
                    if watch is not None:
                        watch.result(results[row])
            return {indexes[row]: result for row, result in results.items()}
        if follower.raised is not None:  # a cancel, or a failure of the watch's own: after generate() has returned
            raise follower.raised
        new_tokens = output[:, prompt_length:].tolist()
        for row, tokens in enumerate(new_tokens):
            if row not in results:
                row_ended(row, tokens)
        progress(len(requests))
        return {indexes[row]: result for row, result in results.items()}

    def _result(self, request: GenerationRequest, prompt: list[int], tokens: list[int],
                latency: float) -> GenerationResult:
        """A row's generated tokens (up to its end, padding after it ignored) as the request's result."""
        completion = self._until_end(tokens)
        text = self.loaded.tokenizer.decode(completion, skip_special_tokens=True)
        text = completion_cut(text, completion_lead_in(request.user)) if self.uses_completion else text.strip()
        return GenerationResult(key=request.key, text=text, prompt_tokens=len(prompt),
                                completion_tokens=len(completion), latency_s=latency,
                                error=None if text else "empty completion")

    def _until_end(self, tokens: list[int]) -> list[int]:
        """Generated tokens up to (not including) the first end-of-sequence or padding token."""
        tokenizer = self.loaded.tokenizer
        stops = {tokenizer.pad_token_id, *self._eos_ids()}
        for position, token in enumerate(tokens):
            if token in stops:
                return tokens[:position]
        return tokens

    def _eos_ids(self) -> set[int]:
        eos = self.loaded.model.generation_config.eos_token_id
        ids = eos if isinstance(eos, list) else [eos]
        return {token for token in [*ids, self.loaded.tokenizer.eos_token_id] if token is not None}


# A batch is padded to its longest prompt: a new batch starts rather than pad beyond this share of the real tokens.
MAX_PADDING_SHARE = 0.5


def length_batches(lengths: list[int], size: int) -> list[list[int]]:
    """Indexes of prompts in batches of at most size, shortest prompts first, so that padding stays under
    MAX_PADDING_SHARE of each batch's tokens: one long prompt (an example note of 800 tokens beside prompts of 150)
    would otherwise make every row of its batch compute 800 positions, which costs more than the batch saves."""
    batches: list[list[int]] = []
    current: list[int] = []
    real = 0
    for index in sorted(range(len(lengths)), key=lengths.__getitem__):
        padded = (len(current) + 1) * lengths[index]
        if current and (len(current) == size or padded > (1 + MAX_PADDING_SHARE) * (real + lengths[index])):
            batches.append(current)
            current, real = [], 0
        current.append(index)
        real += lengths[index]
    return [*batches, current] if current else batches


def batch_follower(*, prompt_length: int, max_new_tokens: int, stops: set[int],
                   text_ended: Callable[[list[int]], bool] | None, on_end: Callable[[int, list[int]], None],
                   on_progress: Callable[[float], None]) -> Any:
    """A stopping criterion that follows a batch at every decoding step: it hands each row that has just ended (an
    end-of-sequence or padding token, or text_ended: a base model's note ends at its first blank line, and the row
    stops there) to on_end with its generated tokens, then reports the batch's progress to on_progress (ended rows
    count 1, the others the share of max_new_tokens written). An exception from either (a cancel) stops every row;
    it is kept in `raised` for the caller to raise once generate() has returned."""
    import torch
    from transformers import StoppingCriteria

    class BatchFollower(StoppingCriteria):
        def __init__(self) -> None:
            self.ended: set[int] = set()
            self.raised: Exception | None = None

        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
            rows = input_ids.shape[0]
            if self.raised is not None:
                return torch.ones(rows, dtype=torch.bool, device=input_ids.device)
            generated = input_ids[:, prompt_length:]
            last = generated[:, -1].tolist()
            stop = [False] * rows
            try:
                for row in range(rows):
                    if row in self.ended:
                        continue
                    tokens = None
                    if last[row] not in stops and text_ended is not None:
                        tokens = generated[row].tolist()
                    if last[row] in stops or (tokens is not None and text_ended(tokens)):
                        self.ended.add(row)
                        stop[row] = True
                        on_end(row, tokens if tokens is not None else generated[row].tolist())
                share = min(1.0, generated.shape[1] / max_new_tokens)
                on_progress(len(self.ended) + (rows - len(self.ended)) * share)
            except Exception as error:  # kept, and raised by the caller once generate() has returned
                self.raised = error
                return torch.ones(rows, dtype=torch.bool, device=input_ids.device)
            return torch.tensor(stop, dtype=torch.bool, device=input_ids.device)

    return BatchFollower()
