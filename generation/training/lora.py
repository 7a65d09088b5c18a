"""The LoRA fine-tuning engine (peft on a local transformers model), in plain Python so it runs and is tested
without Celery or a database: finetune.py runs it for a FineTuneJob, `manage.py finetune` in-process.

- The base model is loaded from a ModelConfig as the local backend loads it (model_path under MODEL_CACHE_DIR,
  gguf_file, local files only); device and precision are chosen here for training: CUDA with bf16 (fp16 and a
  gradient scaler where bf16 is missing), else fp32 on the CPU, which works but only for small runs.
- A record (instruction, input, output) becomes the prompt exactly as generation will send it to this model
  (LocalBackend.prompt_ids: the chat template of an instruct model, the Alpaca or completion wrapper otherwise)
  followed by the output as the model should write it there (response_ids); the loss is on the output tokens only
  (labels -100 on the prompt and the padding), summed over the effective batch and divided by its output tokens, so
  gradient accumulation gives the gradient of one batch of batch_size records.
- Data order is a seeded permutation per epoch; step s takes the s-th slice of it. A checkpoint every
  checkpoint_every steps holds the adapter, optimizer, scheduler, gradient scaler, RNG states, step, epoch and the
  epoch's order; a new run in the same output directory continues from the latest one at its step, and a run
  interrupted between checkpoints redoes at most the steps since the last one, with the same batches and the
  same dropout. should_stop() is asked between steps (cancel).
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import logging
import math
import os
import random
import shutil
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext_noop

from generation.backends.base import GenerationRequest
from generation.backends.local_backend import LoadedModel, LocalBackend, device_choose, model_location
from generation.prompts import BLANK_LINE

if TYPE_CHECKING:
    import torch

    from generation.models import ModelConfig

logger = logging.getLogger("medsyn.training")

DEFAULT_TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj")
IGNORE_INDEX = -100  # the label torch's cross-entropy skips: prompt and padding positions
CHECKPOINTS = "checkpoints"
CHECKPOINT_PREFIX = "step-"
TRAINER_STATE = "trainer_state.pt"
ADAPTER = "adapter"
# Stored untranslated in a job's run_info; the page translates it ({% trans %} of the value).
CPU_WARNING = gettext_noop("Training on the CPU: fine for a short demonstration run of a small model, far too slow "
                           "for a real one (one step of batch 8 x 128 tokens of Gemma 3 270M takes minutes on 2 "
                           "cores); run real fine-tuning on a GPU worker.")


@dataclass(frozen=True)
class TrainingSettings:
    """What a run is asked to do; the defaults are the paper's (METHOD.md) except max_length, a product default."""

    lora_r: int = 16
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = DEFAULT_TARGET_MODULES
    learning_rate: float = 2e-5
    epochs: float = 3.0
    batch_size: int = 256  # effective: micro-batches of micro_batch_size, gradients accumulated
    micro_batch_size: int = 8
    max_length: int = 512
    max_steps: int | None = None
    warmup_steps: int = 100
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    eval_every: int = 50
    checkpoint_every: int = 50
    keep_checkpoints: int = 2
    validation_limit: int = 256  # validation records scored at each evaluation (a fixed seeded subset)
    seed: int = 17

    def resume_key(self) -> dict[str, Any]:
        """The settings a checkpoint must share with the run that resumes it (the rest may change freely)."""
        names = ("lora_r", "lora_alpha", "target_modules", "batch_size", "max_length", "seed", "epochs", "max_steps",
                 "warmup_steps", "learning_rate")
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in dataclasses.asdict(self).items() if name in names}


@dataclass(frozen=True)
class RunStart:
    """Told once, before the first step of a run (a resumed one included)."""

    total_steps: int
    steps_per_epoch: int
    resumed_from: int  # the checkpoint's step, 0 for a fresh run
    device: str
    dtype: str
    n_train: int
    n_validation: int
    skipped_too_long: int  # records (train and validation) whose prompt alone fills max_length
    target_modules: list[str]
    trainable_parameters: int
    total_parameters: int
    prompt_format: str = ""  # how the prompts were rendered (ModelConfig.PromptFormat), as generation will render them
    warnings: list[str] = field(default_factory=list)  # gettext_noop messages

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class StepReport:
    """Told after every optimiser step."""

    step: int
    total_steps: int
    epoch: float  # epochs done, fractional
    train_loss: float
    val_loss: float | None  # at evaluation steps only
    learning_rate: float
    tokens: int  # tokens (prompt + output, no padding) in the step's batch
    tokens_per_second: float
    eta_seconds: float
    checkpoint_step: int | None  # this step, when a checkpoint was saved after it

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TrainingResult:
    finished: bool  # False: stopped by should_stop before the last step
    step: int
    total_steps: int
    adapter_dir: Path | None  # the final adapter, when finished
    train_loss: float | None
    val_loss: float | None


@dataclass(frozen=True)
class Example:
    """One encoded record: the prompt's tokens then the output's; loss on the output only."""

    input_ids: list[int]
    prompt_length: int

    def labels(self) -> list[int]:
        return [IGNORE_INDEX] * self.prompt_length + self.input_ids[self.prompt_length:]


class CheckpointMismatch(ValueError):
    """The output directory holds a checkpoint of a run with other data or settings: it cannot be continued."""


# --- Model --------------------------------------------------------------------------------------------------------

def training_precision(device: str) -> tuple[Any, bool]:
    """(dtype, whether a gradient scaler is needed): bf16 on CUDA when supported, else fp16 with a scaler; fp32 on
    the CPU (bf16 is slower there: STACK.md)."""
    import torch

    if device.startswith("cuda"):
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, False
        return torch.float16, True
    return torch.float32, False


def base_model_load(base: ModelConfig, *, device: str, dtype: Any) -> tuple[Any, Any]:
    """Tokenizer and model of a local ModelConfig, from local files only (as local_backend.model_load, without its
    inference settings: padding on the right, train mode)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    location = model_location(base.model_path)
    if not location.is_dir():
        raise FileNotFoundError(f"model directory not found: {location}")
    options: dict[str, Any] = {"local_files_only": True}
    if base.gguf_file:
        options["gguf_file"] = base.gguf_file
    tokenizer = AutoTokenizer.from_pretrained(location, **options)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(location, dtype=dtype, **options)
    if base.gguf_file:
        # The GGUF weights are dequantised on load; what is left of the quantiser would make peft treat the model
        # as quantised (the same clearing the model cache does before saving as safetensors).
        model.hf_quantizer = None
        model.config.quantization_config = None
        model.is_quantized = False
    model.to(device)
    return model, tokenizer


def target_modules_resolve(model: Any, requested: Iterable[str]) -> list[str]:
    """The requested module names the model has (q/k/v/o by default); when it has none of them (GPT-2's c_attn,
    Falcon's query_key_value ...), the linear projections inside its attention blocks."""
    from torch import nn

    leaves: set[str] = set()
    attention: set[str] = set()
    for name, module in model.named_modules():
        kind = type(module).__name__
        if isinstance(module, nn.Linear) or kind == "Conv1D":
            leaf = name.rsplit(".", 1)[-1]
            leaves.add(leaf)
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            if "attention" in type(parent).__name__.lower() or "attn" in type(parent).__name__.lower():
                attention.add(leaf)
    found = [name for name in requested if name in leaves]
    if found:
        return found
    if not attention:
        raise ValueError(f"none of the target modules {list(requested)} is in the model, and no attention "
                         f"projection was found to use instead")
    return sorted(attention)


def lora_wrap(model: Any, settings: TrainingSettings) -> tuple[Any, list[str]]:
    from peft import LoraConfig, get_peft_model

    modules = target_modules_resolve(model, settings.target_modules)
    config = LoraConfig(r=settings.lora_r, lora_alpha=settings.lora_alpha, lora_dropout=settings.lora_dropout,
                        target_modules=modules, task_type="CAUSAL_LM")
    return get_peft_model(model, config), modules


def parameter_counts(model: Any) -> tuple[int, int]:
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())


# --- Data ---------------------------------------------------------------------------------------------------------

class PromptRenderer(LocalBackend):
    """The local backend's prompt rendering with no model loaded: training sees each prompt exactly as generation
    will send it to the fine-tuned model (same chat template or wrapper, same special tokens). prompt_format: the
    fine-tuned model's, when it is not the base configuration's (finetune.finetune_prompt_format)."""

    def __init__(self, config: ModelConfig, tokenizer: Any, *, prompt_format: str = "") -> None:
        self.config = config  # no super(): it would load the model
        self.loaded = LoadedModel(model=None, tokenizer=tokenizer, device="cpu")
        self._prompt_format = prompt_format or config.prompt_format

    @property
    def prompt_format(self) -> str:
        return self._prompt_format


def response_ids(output: str, *, renderer: PromptRenderer, tokenizer: Any) -> list[int]:
    """The answer as the model should write it after its prompt. An instruct model (chat, Alpaca) ends it with the
    end-of-sequence token. A base model given a completion prompt continues after its lead-in ("Жалобы пациента:")
    with a space, and its note ends at the first blank line (generation stops there), so the answer is " note\n\n"
    with no blank line inside."""
    if renderer.uses_completion:
        return list(tokenizer(" " + BLANK_LINE.sub("\n", output.strip()) + "\n\n",
                              add_special_tokens=False)["input_ids"])
    ids = list(tokenizer(output, add_special_tokens=False)["input_ids"])
    return ids if tokenizer.eos_token_id is None else [*ids, tokenizer.eos_token_id]


def example_encode(record: Mapping[str, Any], *, renderer: PromptRenderer, tokenizer: Any,
                   max_length: int) -> Example | None:
    """Prompt (the record's instruction as the system text, its input as the user text) + answer (response_ids),
    cut at max_length; None when the prompt alone leaves no room for the answer."""
    prompt = list(renderer.prompt_ids(GenerationRequest(key="", system=str(record.get("instruction") or ""),
                                                        user=str(record.get("input") or ""))))
    if len(prompt) >= max_length:
        return None
    response = response_ids(str(record["output"]), renderer=renderer, tokenizer=tokenizer)
    return Example(input_ids=(prompt + response)[:max_length], prompt_length=len(prompt))


def examples_encode(records: Iterable[Mapping[str, Any]], **options: Any) -> tuple[list[Example], int]:
    """(encoded examples, records skipped because their prompt is max_length tokens or longer)."""
    examples, skipped = [], 0
    for record in records:
        example = example_encode(record, **options)
        if example is None:
            skipped += 1
        else:
            examples.append(example)
    return examples, skipped


def epoch_order(n: int, *, seed: int, epoch: int) -> list[int]:
    """The data order of one epoch: the same for the same seed, whichever process computes it."""
    order = list(range(n))
    random.Random(f"{seed}:order:{epoch}").shuffle(order)
    return order


def micro_batch_tensors(examples: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input_ids, attention_mask and labels (-100 on prompt and padding)."""
    import torch

    width = max(len(example.input_ids) for example in examples)
    ids, mask, labels = [], [], []
    for example in examples:
        padding = width - len(example.input_ids)
        ids.append(example.input_ids + [pad_id] * padding)
        mask.append([1] * len(example.input_ids) + [0] * padding)
        labels.append(example.labels() + [IGNORE_INDEX] * padding)
    return {"input_ids": torch.tensor(ids), "attention_mask": torch.tensor(mask), "labels": torch.tensor(labels)}


def output_tokens(examples: list[Example]) -> int:
    """Tokens the loss is computed on: every output token (the first input token is never predicted)."""
    return sum(len(example.input_ids) - max(example.prompt_length, 1) for example in examples)


# --- Loss ---------------------------------------------------------------------------------------------------------

def _accepts_logits_to_keep(model: Any) -> bool:
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "logits_to_keep" in inspect.signature(inner.forward).parameters


def micro_batch_loss_sum(model: Any, batch: dict[str, torch.Tensor], *, device: str,
                         autocast_dtype: Any | None) -> torch.Tensor:
    """Summed cross-entropy over the output tokens of a micro-batch. Logits are computed only from the first
    position that predicts an output token on (logits_to_keep), which saves most of the memory of a large
    vocabulary (Gemma's 262k) when prompts are long."""
    import torch
    import torch.nn.functional as functional

    input_ids = batch["input_ids"].to(device)
    attention_mask = batch["attention_mask"].to(device)
    labels = batch["labels"].to(device)
    targets = labels[:, 1:]  # position p predicts token p + 1
    predicted = (targets != IGNORE_INDEX).any(dim=0).nonzero()
    first = int(predicted[0]) if len(predicted) else targets.shape[1] - 1
    keep = torch.arange(first, targets.shape[1], device=device)
    options: dict[str, Any] = {}
    if _accepts_logits_to_keep(model):
        options["logits_to_keep"] = keep
    context = (torch.autocast(device_type="cuda", dtype=autocast_dtype) if autocast_dtype is not None
               else contextlib.nullcontext())
    with context:
        logits = model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False, **options).logits
    if "logits_to_keep" not in options:
        logits = logits[:, keep]
    return functional.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets[:, keep].reshape(-1),
                                     ignore_index=IGNORE_INDEX, reduction="sum")


def validation_loss(model: Any, examples: list[Example], *, micro_batch_size: int, pad_id: int, device: str,
                    autocast_dtype: Any | None, on_micro_batch: Callable[[], None] | None = None) -> float | None:
    """Mean cross-entropy per output token over the validation examples."""
    import torch

    if not examples:
        return None
    model.eval()
    total, tokens = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(examples), micro_batch_size):
            chunk = examples[start:start + micro_batch_size]
            total += float(micro_batch_loss_sum(model, micro_batch_tensors(chunk, pad_id), device=device,
                                                autocast_dtype=autocast_dtype))
            tokens += output_tokens(chunk)
            if on_micro_batch is not None:
                on_micro_batch()
    model.train()
    return total / max(tokens, 1)


# --- Checkpoints --------------------------------------------------------------------------------------------------

def checkpoint_dirs(output_dir: Path) -> list[tuple[int, Path]]:
    """Complete checkpoints, oldest first (a directory is renamed into place only once fully written)."""
    root = output_dir / CHECKPOINTS
    found = []
    for path in root.glob(f"{CHECKPOINT_PREFIX}*") if root.is_dir() else []:
        digits = path.name[len(CHECKPOINT_PREFIX):]
        if digits.isdigit() and (path / TRAINER_STATE).is_file():
            found.append((int(digits), path))
    return sorted(found)


def checkpoint_latest(output_dir: Path) -> tuple[int, Path] | None:
    found = checkpoint_dirs(output_dir)
    return found[-1] if found else None


def _rng_state() -> dict[str, Any]:
    import torch

    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _rng_restore(state: dict[str, Any]) -> None:
    import torch

    random.setstate(_tuples(state["python"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(value: Any) -> Any:
    """random.setstate wants the tuples that a save may have turned into lists."""
    return tuple(_tuples(item) for item in value) if isinstance(value, list | tuple) else value


def checkpoint_save(output_dir: Path, *, step: int, model: Any, optimizer: Any, scheduler: Any, scaler: Any,
                    epoch: int, order: list[int], n_train: int, settings: TrainingSettings) -> Path:
    """Write the checkpoint of step into a temporary directory and rename it into place (a kill while writing
    leaves no half checkpoint), then drop all but the newest keep_checkpoints."""
    import torch

    root = output_dir / CHECKPOINTS
    final = root / f"{CHECKPOINT_PREFIX}{step:08d}"
    partial = root / f".{final.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    model.save_pretrained(partial)
    torch.save({"step": step, "epoch": epoch, "order": order, "n_train": n_train,
                "settings": settings.resume_key(), "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler is not None else None,
                "rng": _rng_state()}, partial / TRAINER_STATE)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)
    for _step, old in checkpoint_dirs(output_dir)[:-settings.keep_checkpoints]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_restore(path: Path, *, model: Any, optimizer: Any, scheduler: Any, scaler: Any, n_train: int,
                       settings: TrainingSettings) -> dict[str, Any]:
    """Load a checkpoint into the model, optimizer, scheduler and scaler and restore the RNG states; returns its
    step, epoch and order. CheckpointMismatch when it belongs to other data or settings."""
    import torch
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = torch.load(path / TRAINER_STATE, weights_only=True, map_location="cpu")
    if state["n_train"] != n_train or state["settings"] != settings.resume_key():
        raise CheckpointMismatch(f"the checkpoint {path} belongs to another run (other records or settings)")
    weights = load_file(path / "adapter_model.safetensors")
    set_peft_model_state_dict(model, weights)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    if scaler is not None and state["scaler"] is not None:
        scaler.load_state_dict(state["scaler"])
    _rng_restore(state["rng"])
    return {"step": state["step"], "epoch": state["epoch"], "order": list(state["order"])}


# --- Training -----------------------------------------------------------------------------------------------------

def steps_plan(n_train: int, settings: TrainingSettings) -> tuple[int, int]:
    """(steps per epoch, total steps): one step per batch_size records, epochs may be fractional, max_steps caps."""
    per_epoch = math.ceil(n_train / settings.batch_size)
    total = max(1, math.ceil(per_epoch * settings.epochs))
    if settings.max_steps:
        total = min(total, settings.max_steps)
    return per_epoch, total


def warmup_for(settings: TrainingSettings, total_steps: int) -> int:
    """The paper's 100 warm-up steps came with ~1.8k steps; a short run keeps at most a tenth of its steps for it."""
    return min(settings.warmup_steps, total_steps // 10)


def cosine_schedule(optimizer: Any, *, warmup_steps: int, total_steps: int) -> Any:
    """Linear warm-up to the learning rate (the first step already learns), then cosine decay to zero at the last
    step. Written here rather than imported: transformers.optimization imports its whole Trainer stack (~10 s)."""
    from torch.optim.lr_scheduler import LambdaLR

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / (warmup_steps + 1)
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return LambdaLR(optimizer, factor)


def lora_train(*, base: ModelConfig, train: Iterable[Mapping[str, Any]], validation: Iterable[Mapping[str, Any]],
               settings: TrainingSettings, output_dir: Path, on_start: Callable[[RunStart], None] | None = None,
               on_step: Callable[[StepReport], None] | None = None,
               on_micro_batch: Callable[[], None] | None = None,
               should_stop: Callable[[], bool] | None = None, prompt_format: str = "") -> TrainingResult:
    """Train a LoRA adapter of base on the train records; continue from the latest checkpoint in output_dir when
    there is one. The prompts are rendered in prompt_format (default: base's), the format the fine-tuned model will
    be given at generation time. The final adapter goes to output_dir/adapter. on_micro_batch is called after each
    micro-batch (a step of a large batch on a CPU takes minutes: a sign of life in between). Raises
    CheckpointMismatch, FileNotFoundError (no model directory), ValueError (no record fits max_length, no target
    module)."""
    import torch

    device = device_choose(base.device or "auto")
    dtype, needs_scaler = training_precision(device)
    warnings = []
    if device == "cpu":
        logger.warning("training on the CPU is for small runs only", extra={"model_path": base.model_path})
        warnings.append(CPU_WARNING)
    torch.manual_seed(settings.seed)
    random.seed(settings.seed)
    model, tokenizer = base_model_load(base, device=device, dtype=dtype)
    model, modules = lora_wrap(model, settings)
    model.train()
    renderer = PromptRenderer(base, tokenizer, prompt_format=prompt_format)
    encode = {"renderer": renderer, "tokenizer": tokenizer, "max_length": settings.max_length}
    train_examples, skipped = examples_encode(train, **encode)
    validation_records = list(validation)
    random.Random(f"{settings.seed}:validation").shuffle(validation_records)
    validation_examples, skipped_validation = examples_encode(validation_records[:settings.validation_limit], **encode)
    if not train_examples:
        raise ValueError(f"no training record fits in max_length {settings.max_length} tokens")
    steps_per_epoch, total_steps = steps_plan(len(train_examples), settings)
    pad_id = tokenizer.pad_token_id

    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=settings.learning_rate, weight_decay=settings.weight_decay)
    scheduler = cosine_schedule(optimizer, warmup_steps=warmup_for(settings, total_steps), total_steps=total_steps)
    scaler = torch.amp.GradScaler("cuda") if needs_scaler else None
    autocast_dtype = dtype if device.startswith("cuda") else None

    step, epoch, order = 0, 0, epoch_order(len(train_examples), seed=settings.seed, epoch=0)
    latest = checkpoint_latest(output_dir)
    if latest is not None:
        restored = checkpoint_restore(latest[1], model=model, optimizer=optimizer, scheduler=scheduler,
                                      scaler=scaler, n_train=len(train_examples), settings=settings)
        step, epoch, order = restored["step"], restored["epoch"], restored["order"]
        logger.info("training resumed from a checkpoint", extra={"step": step, "checkpoint": str(latest[1])})
    trainable_count, total_count = parameter_counts(model)
    if on_start:
        on_start(RunStart(total_steps=total_steps, steps_per_epoch=steps_per_epoch, resumed_from=step,
                          device=device, dtype=str(dtype).removeprefix("torch."), n_train=len(train_examples),
                          n_validation=len(validation_examples), skipped_too_long=skipped + skipped_validation,
                          target_modules=modules, trainable_parameters=trainable_count,
                          total_parameters=total_count, prompt_format=renderer.prompt_format, warnings=warnings))

    evaluate = {"micro_batch_size": settings.micro_batch_size, "pad_id": pad_id, "device": device,
                "autocast_dtype": autocast_dtype}
    train_loss = val_loss = None
    started, first_step = time.perf_counter(), step
    while step < total_steps:
        if should_stop is not None and should_stop():
            return TrainingResult(finished=False, step=step, total_steps=total_steps, adapter_dir=None,
                                  train_loss=train_loss, val_loss=val_loss)
        step_epoch, index = divmod(step, steps_per_epoch)
        if step_epoch != epoch:
            epoch, order = step_epoch, epoch_order(len(train_examples), seed=settings.seed, epoch=step_epoch)
        chosen = [train_examples[i] for i in order[index * settings.batch_size:(index + 1) * settings.batch_size]]
        step_started, learning_rate = time.perf_counter(), scheduler.get_last_lr()[0]
        train_loss = _optimiser_step(model, chosen, optimizer=optimizer, scheduler=scheduler, scaler=scaler,
                                     trainable=trainable, settings=settings, on_micro_batch=on_micro_batch,
                                     **evaluate)
        step += 1
        tokens = sum(len(example.input_ids) for example in chosen)
        step_seconds = max(time.perf_counter() - step_started, 1e-9)
        val_loss = None
        if step % settings.eval_every == 0 or step == total_steps:
            val_loss = validation_loss(model, validation_examples, on_micro_batch=on_micro_batch, **evaluate)
        saved = None
        if step % settings.checkpoint_every == 0 or step == total_steps:
            checkpoint_save(output_dir, step=step, model=model, optimizer=optimizer, scheduler=scheduler,
                            scaler=scaler, epoch=epoch, order=order, n_train=len(train_examples), settings=settings)
            saved = step
        per_step = (time.perf_counter() - started) / (step - first_step)
        if on_step:
            on_step(StepReport(step=step, total_steps=total_steps, epoch=round(step / steps_per_epoch, 4),
                               train_loss=train_loss, val_loss=val_loss,
                               learning_rate=learning_rate, tokens=tokens,
                               tokens_per_second=round(tokens / step_seconds, 1),
                               eta_seconds=round(per_step * (total_steps - step), 1), checkpoint_step=saved))
    adapter_dir = output_dir / ADAPTER
    shutil.rmtree(adapter_dir, ignore_errors=True)
    model.save_pretrained(adapter_dir)
    del model, optimizer
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    return TrainingResult(finished=True, step=step, total_steps=total_steps, adapter_dir=adapter_dir,
                          train_loss=train_loss, val_loss=val_loss)


def _optimiser_step(model: Any, examples: list[Example], *, optimizer: Any, scheduler: Any, scaler: Any,
                    trainable: list, settings: TrainingSettings, micro_batch_size: int, pad_id: int, device: str,
                    autocast_dtype: Any | None, on_micro_batch: Callable[[], None] | None) -> float:
    """One optimiser step over the batch, micro-batch by micro-batch (gradient accumulation): each micro-batch's
    loss sum is divided by the output tokens of the whole batch. Returns the batch's mean loss per output token."""
    import torch

    examples = sorted(examples, key=lambda example: len(example.input_ids))  # less padding per micro-batch
    tokens = max(output_tokens(examples), 1)
    optimizer.zero_grad(set_to_none=True)
    total = 0.0
    for start in range(0, len(examples), micro_batch_size):
        chunk = examples[start:start + micro_batch_size]
        loss = micro_batch_loss_sum(model, micro_batch_tensors(chunk, pad_id), device=device,
                                    autocast_dtype=autocast_dtype) / tokens
        (scaler.scale(loss) if scaler is not None else loss).backward()
        total += float(loss.detach())
        if on_micro_batch is not None:
            on_micro_batch()
    if scaler is not None:
        scaler.unscale_(optimizer)
    torch.nn.utils.clip_grad_norm_(trainable, settings.max_grad_norm)
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    scheduler.step()
    return total
