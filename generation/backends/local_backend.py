"""Local transformers models: loaded once per process, batched generation with left padding.

Requests are sorted by prompt length so each batch pads little, and results go back in input order.
Nothing is ever downloaded: every load is local_files_only (HF_HUB_OFFLINE is the truth here), so
model_path is a directory holding one snapshot and ModelConfig.revision is provenance only.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings

from generation.prompts import alpaca_wrap, chat_messages

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
    def uses_chat_template(self) -> bool:
        prompt_format = self.config.prompt_format
        return prompt_format == "chat" or (prompt_format == "auto" and bool(self.loaded.tokenizer.chat_template))

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        tokenizer = self.loaded.tokenizer
        if self.uses_chat_template:
            encoded = tokenizer.apply_chat_template(chat_messages(request.system, request.user),
                                                    add_generation_prompt=True, tokenize=True, return_dict=True)
            return list(encoded["input_ids"])
        return tokenizer(alpaca_wrap(request.system, request.user))["input_ids"]

    def generate(self, requests: list[GenerationRequest]) -> list[GenerationResult]:
        prompts = [self.prompt_ids(request) for request in requests]
        order = sorted(range(len(requests)), key=lambda index: len(prompts[index]))
        results: dict[int, GenerationResult] = {}
        size = self.config.batch_size
        for start in range(0, len(order), size):
            batch = order[start:start + size]
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
            with torch.inference_mode():
                output = model.generate(
                    **encoded, max_new_tokens=self.config.max_new_tokens, do_sample=sampling,
                    temperature=self.config.temperature if sampling else None,
                    top_p=self.config.top_p if sampling else None, pad_token_id=tokenizer.pad_token_id,
                )
        except Exception as error:  # one bad batch (out of memory, for example) must not lose the others
            logger.exception("local batch failed", extra={"keys": [r.key for r in requests]})
            failure = f"{type(error).__name__}: {error}"
            latency = round(time.perf_counter() - started, 4)
            return {index: GenerationResult(key=request.key, error=failure, latency_s=latency)
                    for index, request in zip(indexes, requests, strict=True)}
        latency = round(time.perf_counter() - started, 4)
        new_tokens = output[:, encoded["input_ids"].shape[1]:].tolist()
        results = {}
        for index, request, prompt, tokens in zip(indexes, requests, prompts, new_tokens, strict=True):
            completion = self._until_end(tokens)
            text = tokenizer.decode(completion, skip_special_tokens=True).strip()
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
