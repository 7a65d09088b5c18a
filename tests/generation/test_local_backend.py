"""The local transformers backend on the tiny test model: batches, order, caching and a LoRA adapter."""

from __future__ import annotations

import pytest

from generation.backends import GenerationRequest, backend_for, local_backend
from generation.backends.local_backend import LocalBackend
from generation.models import ModelConfig

SYMPTOMS = ["кашель", "насморк и повышение температуры", "боли в пояснице, усиливающиеся при движении, онемение",
            "головная боль", "слабость, головокружение, тошнота. Давление 150/90."]


def local_config(model_dir, **overrides) -> ModelConfig:
    values = {"name": "tiny", "backend": "local", "model_path": str(model_dir), "device": "auto", "dtype": "auto",
              "temperature": 0.0, "max_new_tokens": 8, "batch_size": 2, **overrides}
    return ModelConfig(**values)


def prompts() -> list[GenerationRequest]:
    return [GenerationRequest(key=f"p{i}", system="Напиши анамнез.", user=f"Жалобы: {s}")
            for i, s in enumerate(SYMPTOMS)]


@pytest.fixture(autouse=True)
def fresh_model_cache():
    local_backend.loaded_models_clear()
    yield
    local_backend.loaded_models_clear()


def one_at_a_time(backend: LocalBackend, batch: list[GenerationRequest]) -> list[str]:
    return [backend.generate([request])[0].text for request in batch]


def test_a_batch_of_five_comes_back_in_input_order_and_matches_single_generation(tiny_model_dir):
    backend = backend_for(local_config(tiny_model_dir))
    assert backend.uses_chat_template

    results = backend.generate(prompts())

    assert [r.key for r in results] == ["p0", "p1", "p2", "p3", "p4"]
    assert all(r.ok and r.text for r in results), [r.error for r in results]
    assert all(0 < r.completion_tokens <= 8 and r.prompt_tokens > 0 for r in results)
    assert [r.prompt_tokens for r in results] == [len(backend.prompt_ids(p)) for p in prompts()]
    # left padding: each prompt generates the same text alone as inside its padded batch
    assert [r.text for r in results] == one_at_a_time(backend, prompts())


def test_the_model_is_loaded_once_per_process(tiny_model_dir):
    first = LocalBackend(local_config(tiny_model_dir))
    second = LocalBackend(local_config(tiny_model_dir, name="other name, same files", batch_size=4))
    assert first.loaded is second.loaded


def test_alpaca_wrapper_when_asked(tiny_model_dir):
    backend = LocalBackend(local_config(tiny_model_dir, prompt_format="alpaca"))
    request = prompts()[0]
    expected = backend.loaded.tokenizer("### Задание: Напиши анамнез.\n### Вход: Жалобы: кашель\n### Ответ: ")
    assert backend.prompt_ids(request) == expected["input_ids"]
    assert backend.generate([request])[0].ok


def test_a_lora_adapter_is_applied(tiny_model_dir, tmp_path):
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, local_files_only=True)
    peft_model = get_peft_model(base, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                 task_type="CAUSAL_LM"))
    torch.manual_seed(1)
    with torch.no_grad():
        for name, parameter in peft_model.named_parameters():
            if "lora_B" in name:  # B starts at zero (a no-op adapter); make it change the output
                parameter.normal_(0, 2.0)
    adapter_dir = tmp_path / "adapter"
    peft_model.save_pretrained(adapter_dir)

    plain = LocalBackend(local_config(tiny_model_dir, max_new_tokens=6))
    adapted = LocalBackend(local_config(tiny_model_dir, max_new_tokens=6, adapter_path=str(adapter_dir)))

    assert type(adapted.loaded.model).__name__ == "PeftModelForCausalLM"
    assert adapted.loaded is not plain.loaded
    plain_results, adapted_results = plain.generate(prompts()), adapted.generate(prompts())
    assert [r.key for r in adapted_results] == ["p0", "p1", "p2", "p3", "p4"]
    assert [r.text for r in adapted_results] != [r.text for r in plain_results]
