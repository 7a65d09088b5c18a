"""Local transformers models: loaded once per process, batched generation with left padding.

Requests are sorted by prompt length and batched so that each batch pads little (length_batches), and results go
back in input order.
Nothing is ever downloaded: every load is local_files_only (HF_HUB_OFFLINE is the truth here), so
model_path is a directory holding one snapshot and ModelConfig.revision is provenance only.

On a CPU the model computes in float32 whatever its files hold ("auto" dtype): the embedded caches are stored in
bfloat16, which is slower than float32 on CPUs in batches. A base model (prompt_format "completion") gets the
completion text of its prompt, no chat template; each sequence of a batch stops at its first blank line (its note
ends there) and the note is cut there (prompts.completion_cut).
"""

from __future__ import annotations

import logging
import threading
import time
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

from .base import GenerationRequest, GenerationResult

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
    """Load tokenizer, model and optional LoRA adapter from local files only."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for location in filter(None, (key.model_path, key.adapter_path)):
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
    if key.adapter_path:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, key.adapter_path)
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

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        prompts = [self.prompt_ids(request) for request in requests]
        results: dict[int, GenerationResult] = {}
        for batch in length_batches([len(prompt) for prompt in prompts], self.config.batch_size):
            results.update(self._generate_batch([requests[i] for i in batch], [prompts[i] for i in batch], batch))
        return [results[index] for index in range(len(requests))]

    def _generate_batch(self, requests: list[GenerationRequest], prompts: list[list[int]],
                        indexes: list[int]) -> dict[int, GenerationResult]:
        import torch

        tokenizer, model = self.loaded.tokenizer, self.loaded.model
        started = time.perf_counter()
        try:
            encoded = tokenizer.pad({"input_ids": prompts}, padding=True, return_tensors="pt").to(self.loaded.device)
            sampling = self.config.temperature > 0
            prompt_length = encoded["input_ids"].shape[1]
            stopping = blank_line_stopping(tokenizer, prompt_length) if self.uses_completion else None
            with torch.inference_mode():
                output = model.generate(
                    **encoded, max_new_tokens=self.config.max_new_tokens, do_sample=sampling,
                    temperature=self.config.temperature if sampling else None,
                    top_p=self.config.top_p if sampling else None, pad_token_id=tokenizer.pad_token_id,
                    stopping_criteria=stopping,
                )
        except Exception as error:  # one bad batch (out of memory, for example) must not lose the others
            logger.exception("local batch failed", extra={"keys": [r.key for r in requests]})
            failure = f"{type(error).__name__}: {error}"
            latency = round(time.perf_counter() - started, 4)
            return {index: GenerationResult(key=request.key, error=failure, latency_s=latency)
                    for index, request in zip(indexes, requests, strict=True)}
        latency = round(time.perf_counter() - started, 4)
        new_tokens = output[:, prompt_length:].tolist()
        results = {}
        for index, request, prompt, tokens in zip(indexes, requests, prompts, new_tokens, strict=True):
            completion = self._until_end(tokens)
            text = tokenizer.decode(completion, skip_special_tokens=True)
            text = completion_cut(text, completion_lead_in(request.user)) if self.uses_completion else text.strip()
            results[index] = GenerationResult(
                key=request.key, text=text, prompt_tokens=len(prompt), completion_tokens=len(completion),
                latency_s=latency, error=None if text else "empty completion",
            )
        return results

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


def blank_line_stopping(tokenizer: Any, prompt_length: int) -> Any:
    """A stopping criterion that ends each sequence of a batch at its first blank line after some text, so a batch
    runs only as long as its longest note. Decoding the new tokens every step costs little beside the model."""
    import torch
    from transformers import StoppingCriteria, StoppingCriteriaList

    class BlankLineStop(StoppingCriteria):
        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any) -> torch.BoolTensor:
            texts = tokenizer.batch_decode(input_ids[:, prompt_length:], skip_special_tokens=True)
            return torch.tensor([completion_ended(text) for text in texts], dtype=torch.bool, device=input_ids.device)

    return StoppingCriteriaList([BlankLineStop()])
