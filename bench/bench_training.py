"""LoRA training throughput on the CPU (tokens/s) and what one epoch of RuMedTop3 train would take at that rate.

    .venv/bin/python bench/bench_training.py [--model-dir var/models] [--steps 6] [--gemma-steps 3]
                                             [--batch 8] [--micro-batch 4] [--max-length 256]
                                             [--epoch-max-length 2048]

No services: the engine (generation/training/lora.py) runs in this process with the product's settings but for
the batch (the paper's r 16, alpha 16, dropout 0.05 on q/k/v/o, AdamW, cosine; fp32 on the CPU).
- The tiny random test model (tests/tiny_model.py, built in a temporary directory), its chat template;
- Gemma 3 270M (base) when its converted cache is in the model directory (`make up` or `manage.py prepare_models`
  writes it; missing: skipped, saying so), its completion templates.
The records are what an instruction set holds for RuMedTop3 train (data/rumedbench/RuMedTop3/train_v1.jsonl):
every note in the three prompt variants (prompt(S,E) with another note of its code as the example, prompt(S),
prompt(code)), the note as the answer. The symptoms are drawn from a fixed Russian list (the graph's lexicon
matcher needs the database; the prompts' lengths barely depend on it) and the disease name is the code.
Throughput = tokens (prompt + answer, no padding) of the measured steps (records cut at --max-length) / their time;
the first step is a warm-up and not counted. The epoch's tokens are counted with each model's tokenizer, cut at
--epoch-max-length (the paper's 2048) as training cuts them; epoch time = those tokens / the measured rate (a figure
for the README, not a target). The tiny model's tokenizer (300 tokens, trained on a few sentences) splits Russian
into many more tokens than a real one: its epoch figure is only that arithmetic.

Figures measured on the 2-core development machine (other sessions' test suites running at the same time),
batch 8 (micro-batch 4), max length 256: see the closing note of issue 12.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))
RUMEDTOP3_TRAIN = BASE_DIR / "data" / "rumedbench" / "RuMedTop3" / "train_v1.jsonl"
RUSSIAN_SYMPTOMS = ["кашель", "лихорадка", "боль в горле", "головная боль", "головокружение", "боль в пояснице",
                    "тошнота", "слабость", "одышка", "боль в груди", "боль в суставах", "насморк"]
VARIANTS = ("symptoms_example", "symptoms", "code")


def rumedtop3_records(*, completion: bool, rng: random.Random) -> tuple[list[dict], list[dict]]:
    """(RuMedTop3 train notes, their records in the three Russian prompt variants (completion templates for a base
    model))."""
    from generation.prompts import CHAT_TEMPLATES, COMPLETION_TEMPLATES, PromptTooLongError, prompt_build

    templates = {t["variant"]: t for t in (COMPLETION_TEMPLATES if completion else CHAT_TEMPLATES)
                 if t["language"] == "ru"}
    with RUMEDTOP3_TRAIN.open(encoding="utf-8") as lines:
        notes = [json.loads(line) for line in lines if line.strip()]
    by_code: dict[str, list[str]] = defaultdict(list)
    for note in notes:
        by_code[note["code"]].append(note["symptoms"])
    records = []
    for note in notes:
        others = [text for text in by_code[note["code"]] if text != note["symptoms"]] or ["Пациент жалуется."]
        for variant in VARIANTS:
            template = templates[variant]
            try:
                built = prompt_build(system_text=template["system_text"], user_text=template["user_text"],
                                     variant=variant, language="ru", rng=rng, completion=completion,
                                     example=rng.choice(others), symptoms=rng.sample(RUSSIAN_SYMPTOMS, 3),
                                     disease_name=note["code"], code=note["code"])
            except PromptTooLongError:  # skipped, as an instruction set skips it
                continue
            records.append({"instruction": built.system, "input": built.user, "output": note["symptoms"],
                            "part": "train"})
    return notes, records


def epoch_tokens(config, records: list[dict], max_length: int) -> tuple[int, int]:
    """(tokens of one epoch as training cuts them, records whose prompt alone fills max_length)."""
    from transformers import AutoTokenizer

    from generation.backends.local_backend import model_location
    from generation.training.lora import PromptRenderer, examples_encode

    tokenizer = AutoTokenizer.from_pretrained(model_location(config.model_path), local_files_only=True)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    examples, skipped = examples_encode(records, renderer=PromptRenderer(config, tokenizer), tokenizer=tokenizer,
                                        max_length=max_length)
    return sum(len(example.input_ids) for example in examples), skipped


def throughput(config, records: list[dict], *, steps: int, batch: int, micro_batch: int,
               max_length: int) -> tuple[float, int, float]:
    """(tokens/s over the steps after the first, trainable parameters, load + warm-up seconds)."""
    from generation.training.lora import TrainingSettings, lora_train

    reports, starts = [], []
    settings = TrainingSettings(batch_size=batch, micro_batch_size=micro_batch, max_length=max_length,
                                max_steps=steps, epochs=100, warmup_steps=0, eval_every=10**6,
                                checkpoint_every=10**6, validation_limit=0)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as output:
        lora_train(base=config, train=records, validation=[], settings=settings, output_dir=Path(output),
                   on_start=starts.append, on_step=reports.append)
    measured = reports[1:] or reports
    tokens = sum(report.tokens for report in measured)
    seconds = sum(report.tokens / report.tokens_per_second for report in measured)
    for report in reports:
        print(f"    step {report.step}: {report.tokens} tokens, {report.tokens_per_second:.1f} tokens/s, "
              f"loss {report.train_loss:.3f}")
    warm_up = time.perf_counter() - started - seconds
    return tokens / seconds, starts[0].trainable_parameters, warm_up


def duration(seconds: float) -> str:
    days, rest = divmod(int(seconds), 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    return (f"{days} d " if days else "") + f"{hours} h {minutes:02d} min"


def bench(title: str, config, *, completion: bool, steps: int, args) -> str:
    rng = random.Random(17)
    notes, records = rumedtop3_records(completion=completion, rng=rng)
    tokens, skipped = epoch_tokens(config, records, args.epoch_max_length)
    print(f"{title}: one epoch of RuMedTop3 train = {len(notes)} notes x {len(VARIANTS)} variants = {len(records)} "
          f"records, {tokens:,} tokens at max length {args.epoch_max_length} ({skipped} records left out)")
    sample = random.Random(1).sample(records, min(len(records), steps * args.batch))
    rate, trainable, warm_up = throughput(config, sample, steps=steps, batch=args.batch,
                                          micro_batch=args.micro_batch, max_length=args.max_length)
    epoch = tokens / rate
    print(f"  {rate:.1f} tokens/s ({trainable:,} trainable parameters; load and warm-up {warm_up:.0f} s)")
    print(f"  one epoch at that rate: {duration(epoch)}; the paper's 3 epochs: {duration(3 * epoch)}")
    return f"| {title} | {rate:.1f} tokens/s | {tokens:,} | {duration(epoch)} | {duration(3 * epoch)} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, help="the model cache (default: settings.MODEL_CACHE_DIR)")
    parser.add_argument("--steps", type=int, default=6, help="steps of the tiny model (the first is a warm-up)")
    parser.add_argument("--gemma-steps", type=int, default=3, help="steps of Gemma (minutes each on a CPU)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--micro-batch", type=int, default=4)
    parser.add_argument("--max-length", type=int, default=256, help="of the measured steps")
    parser.add_argument("--epoch-max-length", type=int, default=2048, help="of the epoch's token count")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "medsyn_site.settings.local")
    os.environ.setdefault("LOG_LEVEL", "ERROR")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import django

    django.setup()
    import torch
    from django.conf import settings

    from generation.models import ModelConfig
    from medsyn_site.modelcache import GEMMA3, model_dir_is_ready
    from tests.tiny_model import tiny_model_build

    model_dir = (args.model_dir or Path(settings.MODEL_CACHE_DIR)).resolve()
    print(f"{torch.get_num_threads()} CPU threads; batch {args.batch} (micro-batch {args.micro_batch}), max length "
          f"{args.max_length}; LoRA r 16 on q/k/v/o, fp32")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        tiny = ModelConfig(name="tiny", backend="local", model_path=str(tiny_model_build(Path(folder) / "tiny")),
                           prompt_format="chat")
        rows.append(bench("tiny random Llama (test model)", tiny, completion=False, steps=args.steps, args=args))
    gemma_dir = model_dir / GEMMA3.folder_name()
    if model_dir_is_ready(gemma_dir):
        gemma = ModelConfig(name=GEMMA3.folder_name(), backend="local", model_path=str(gemma_dir),
                            prompt_format=GEMMA3.prompt_format)
        rows.append(bench(GEMMA3.title, gemma, completion=True, steps=args.gemma_steps, args=args))
    else:
        print(f"{GEMMA3.title}: skipped, no converted cache in {gemma_dir} (run `manage.py prepare_models`)")
    print("\n| model | training throughput | tokens per epoch | one epoch | 3 epochs |\n|---|---|---|---|---|\n"
          + "\n".join(rows))


if __name__ == "__main__":
    main()
