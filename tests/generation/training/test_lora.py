"""The LoRA engine on the tiny random model, in plain Python (no Celery, no database): the loss falls, only the
answers are learnt, the adapter changes what the local backend generates, a run resumes at its checkpoint's step
with the same batches and dropout, and should_stop ends it between steps.

The tiny model's output layer is so small (hidden 32, weights ~0.02) that adapters on q/k/v/o alone can barely move
its logits; the runs that must learn something visible put an adapter on lm_head too (a property of the random tiny
model, not of the engine: the default targets are checked on their own)."""

from __future__ import annotations

import dataclasses

import pytest

from generation.backends import GenerationRequest, local_backend
from generation.backends.local_backend import LocalBackend
from generation.models import ModelConfig
from generation.training import lora
from generation.training.lora import (
    IGNORE_INDEX,
    CheckpointMismatch,
    PromptRenderer,
    TrainingSettings,
    checkpoint_dirs,
    epoch_order,
    example_encode,
    lora_train,
    micro_batch_loss_sum,
    micro_batch_tensors,
    target_modules_resolve,
)

ANSWER = "кашель насморк кашель"
RECORDS = [{"instruction": "Напиши анамнез.", "input": f"Жалобы: кашель {i % 3}", "output": ANSWER,
            "category": "J06", "variant": "symptoms", "note_id": i, "part": "train"} for i in range(16)]
LEARNING = TrainingSettings(lora_r=8, lora_alpha=16, learning_rate=3e-2, batch_size=4, micro_batch_size=2,
                            epochs=100, max_steps=24, warmup_steps=0, eval_every=8, checkpoint_every=8, max_length=96,
                            target_modules=("q_proj", "k_proj", "v_proj", "o_proj", "lm_head"))


def base_config(model_dir, **overrides) -> ModelConfig:
    return ModelConfig(**{"name": "tiny", "backend": "local", "model_path": str(model_dir), "temperature": 0.0,
                          "max_new_tokens": 10, "batch_size": 4, **overrides})


@dataclasses.dataclass
class Run:
    reports: list = dataclasses.field(default_factory=list)
    starts: list = dataclasses.field(default_factory=list)
    result: lora.TrainingResult | None = None

    def losses(self) -> dict[int, float]:
        return {report.step: report.train_loss for report in self.reports}


def train(model_dir, output_dir, settings: TrainingSettings = LEARNING, *, stop_after: int | None = None,
          records=RECORDS) -> Run:
    run = Run()

    def should_stop() -> bool:
        return stop_after is not None and len(run.reports) >= stop_after

    run.result = lora_train(base=base_config(model_dir), train=records, validation=records[:4], settings=settings,
                            output_dir=output_dir, on_start=run.starts.append, on_step=run.reports.append,
                            should_stop=should_stop)
    return run


@pytest.fixture(scope="module")
def trained(tiny_model_dir, tmp_path_factory) -> tuple[Run, object]:
    output = tmp_path_factory.mktemp("lora")
    return train(tiny_model_dir, output), output


@pytest.fixture(autouse=True)
def fresh_model_cache():
    local_backend.loaded_models_clear()
    yield
    local_backend.loaded_models_clear()


def test_the_loss_falls_on_a_tiny_repetitive_set(trained):
    run, output = trained
    losses = run.losses()
    assert sorted(losses) == list(range(1, 25)) and run.result.finished and run.result.step == 24
    assert losses[24] < 0.5 * losses[1], losses
    validation = [report.val_loss for report in run.reports if report.val_loss is not None]
    assert len(validation) == 3 and validation[-1] < validation[0]  # steps 8, 16, 24
    start = run.starts[0]
    assert (start.total_steps, start.steps_per_epoch, start.resumed_from, start.n_train) == (24, 4, 0, 16)
    assert start.device == "cpu" and start.dtype == "float32" and lora.CPU_WARNING in start.warnings
    assert 0 < start.trainable_parameters < start.total_parameters
    assert all(report.tokens > 0 and report.tokens_per_second > 0 for report in run.reports)
    assert run.reports[-1].eta_seconds == 0 and run.reports[0].eta_seconds > 0
    assert (output / "adapter" / "adapter_config.json").is_file()


def test_the_default_q_k_v_o_targets_learn_too(tiny_model_dir, tmp_path):
    settings = dataclasses.replace(LEARNING, target_modules=lora.DEFAULT_TARGET_MODULES, learning_rate=1e-2,
                                   max_steps=12, checkpoint_every=100)
    run = train(tiny_model_dir, tmp_path, settings)
    losses = run.losses()
    assert run.starts[0].target_modules == ["q_proj", "k_proj", "v_proj", "o_proj"]
    assert losses[12] < losses[1] - 0.1, losses


def test_labels_mask_the_prompt_and_the_loss_is_on_the_answer_only(tiny_model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    renderer = PromptRenderer(base_config(tiny_model_dir), tokenizer)
    record = RECORDS[0]
    example = example_encode(record, renderer=renderer, tokenizer=tokenizer, max_length=96)
    prompt = renderer.prompt_ids(GenerationRequest(key="", system=record["instruction"], user=record["input"]))
    # The prompt is what generation sends this model (its chat template), the answer follows with the EOS token.
    assert prompt == LocalBackend.prompt_ids(renderer, GenerationRequest(key="", system=record["instruction"],
                                                                         user=record["input"]))
    assert tokenizer.decode(prompt).endswith("<|assistant|>") and example.prompt_length == len(prompt)
    answer = tokenizer(ANSWER, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    assert example.input_ids == prompt + answer
    assert example.labels() == [IGNORE_INDEX] * len(prompt) + answer

    short = example_encode({**record, "output": "кашель"}, renderer=renderer, tokenizer=tokenizer, max_length=96)
    batch = micro_batch_tensors([example, short], tokenizer.pad_token_id)
    assert batch["labels"][1].tolist()[len(short.input_ids):] == [IGNORE_INDEX] * (len(example.input_ids)
                                                                                   - len(short.input_ids))
    assert batch["attention_mask"][1].sum() == len(short.input_ids)

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with torch.no_grad():
        summed = micro_batch_loss_sum(model, batch, device="cpu", autocast_dtype=None)
        reference = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"],
                          labels=batch["labels"])
    answer_tokens = len(answer) + len(short.input_ids) - short.prompt_length
    assert float(summed) == pytest.approx(float(reference.loss) * answer_tokens, rel=1e-4)
    # Another prompt before the same answer changes the loss only through the context, never by scoring the prompt.
    unmasked = {**batch, "labels": batch["input_ids"].masked_fill(batch["attention_mask"] == 0, IGNORE_INDEX)}
    with torch.no_grad():
        assert float(micro_batch_loss_sum(model, unmasked, device="cpu", autocast_dtype=None)) > float(summed)

    assert example_encode(record, renderer=renderer, tokenizer=tokenizer, max_length=len(prompt)) is None


def test_each_prompt_format_gets_its_answer_as_generation_reads_it(tiny_model_dir):
    from transformers import AutoTokenizer

    from generation.prompts import alpaca_wrap, completion_text

    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    record = {"instruction": "Медицинская карта пациента.", "input": "Симптомы: кашель.\nЖалобы пациента:",
              "output": "кашель\n\nнасморк"}
    # A base model continues its completion prompt after the lead-in; its note ends at the first blank line.
    completion = PromptRenderer(base_config(tiny_model_dir, prompt_format="completion"), tokenizer)
    example = example_encode(record, renderer=completion, tokenizer=tokenizer, max_length=200)
    assert example.input_ids[:example.prompt_length] == tokenizer(
        completion_text(record["instruction"], record["input"]))["input_ids"]
    assert tokenizer.decode(example.input_ids[example.prompt_length:]) == " кашель\nнасморк\n\n"
    # An instruct model without a chat template: the Alpaca wrapper, the answer closed by the end of sequence.
    alpaca = PromptRenderer(base_config(tiny_model_dir, prompt_format="alpaca"), tokenizer)
    example = example_encode(record, renderer=alpaca, tokenizer=tokenizer, max_length=200)
    assert tokenizer.decode(example.input_ids[:example.prompt_length]) == alpaca_wrap(record["instruction"],
                                                                                      record["input"])
    assert example.input_ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(example.input_ids[example.prompt_length:-1]) == record["output"]


def test_the_adapter_changes_what_the_local_backend_generates(trained, tiny_model_dir):
    run, output = trained
    requests = [GenerationRequest(key=str(i), system=r["instruction"], user=r["input"]) for i, r in
                enumerate(RECORDS[:3])]
    plain = LocalBackend(base_config(tiny_model_dir)).generate(requests)
    adapted = LocalBackend(base_config(tiny_model_dir, adapter_path=str(output / "adapter"))).generate(requests)
    assert all(result.ok for result in adapted)
    assert [r.text for r in adapted] != [r.text for r in plain]
    assert all(r.text.startswith(ANSWER[0]) for r in adapted), [r.text for r in adapted]  # the answer's start


def test_a_run_resumes_at_its_checkpoint_step_with_the_same_batches(tiny_model_dir, tmp_path):
    settings = dataclasses.replace(LEARNING, max_steps=8, checkpoint_every=4, eval_every=4,
                                   target_modules=("q_proj", "v_proj", "lm_head"))
    whole = train(tiny_model_dir, tmp_path / "whole", settings)

    first = train(tiny_model_dir, tmp_path / "split", settings, stop_after=6)
    assert not first.result.finished and first.result.step == 6 and first.result.adapter_dir is None
    assert [step for step, _path in checkpoint_dirs(tmp_path / "split")] == [4]

    second = train(tiny_model_dir, tmp_path / "split", settings)
    assert second.starts[0].resumed_from == 4
    assert [report.step for report in second.reports] == [5, 6, 7, 8]  # from the checkpoint, not from 0
    assert second.result.finished and second.result.step == 8
    for step, loss in second.losses().items():  # the same batches, dropout and optimiser state as without a break
        assert loss == pytest.approx(whole.losses()[step], rel=1e-5)
    assert [step for step, _path in checkpoint_dirs(tmp_path / "split")] == [4, 8]


def test_a_checkpoint_of_other_settings_is_refused(tiny_model_dir, tmp_path):
    settings = dataclasses.replace(LEARNING, max_steps=2, checkpoint_every=2, target_modules=("q_proj", "v_proj"))
    train(tiny_model_dir, tmp_path, settings)
    with pytest.raises(CheckpointMismatch):
        train(tiny_model_dir, tmp_path, dataclasses.replace(settings, batch_size=8))


def test_should_stop_ends_the_run_between_steps(tiny_model_dir, tmp_path):
    settings = dataclasses.replace(LEARNING, max_steps=20, target_modules=("q_proj",))
    run = train(tiny_model_dir, tmp_path, settings, stop_after=3)
    assert not run.result.finished and run.result.step == 3
    assert [report.step for report in run.reports] == [1, 2, 3]
    assert not (tmp_path / "adapter").exists() and checkpoint_dirs(tmp_path) == []


def test_gradient_accumulation_covers_the_effective_batch_and_epochs_cycle_the_data():
    settings = TrainingSettings(batch_size=256, epochs=3)
    assert lora.steps_plan(4690 * 3, settings) == (55, 165)
    assert lora.steps_plan(10, dataclasses.replace(settings, max_steps=2)) == (1, 2)
    assert lora.warmup_for(settings, 1800) == 100 and lora.warmup_for(settings, 30) == 3
    assert epoch_order(10, seed=1, epoch=0) == epoch_order(10, seed=1, epoch=0) != epoch_order(10, seed=1, epoch=1)
    assert sorted(epoch_order(10, seed=1, epoch=2)) == list(range(10))


def test_target_modules_fall_back_to_the_attention_projections_present():
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = GPT2LMHeadModel(GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=50, n_positions=32))
    assert target_modules_resolve(gpt2, lora.DEFAULT_TARGET_MODULES) == ["c_attn", "c_proj"]
    assert target_modules_resolve(gpt2, ["c_attn", "q_proj"]) == ["c_attn"]
