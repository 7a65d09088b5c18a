"""A fine-tuned model is given at generation time the prompts it was trained on: build an instruction set, fine-tune a
base model (prompt format completion, as Gemma 3 270M) on it, and the registered model's job gets the set's templates
in the wire format training used (Alpaca for the method's instruction prompts; completion for a set of completion
templates). Sets mixing the two styles are refused."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from generation import jobs
from generation.backends import GenerationRequest, local_backend
from generation.backends.local_backend import LocalBackend
from generation.forms import model_and_template_check
from generation.jobs import PlanRequest, do_create_job
from generation.models import ModelConfig, PromptTemplate
from generation.prompts import ALPACA_TEMPLATE
from generation.services import prompt_templates_ensure
from generation.training.finetune import (
    do_start_finetune,
    finetune_job_run,
    finetune_prompt_format,
    instruction_set_records,
)
from generation.training.instruction_sets import (
    InstructionSetRequest,
    do_build_instruction_set,
    instruction_set_build_run,
    instruction_set_prompt_style,
    instruction_set_request_from,
)
from generation.training.lora import PromptRenderer, example_encode
from generation.training.models import InstructionSet

pytestmark = pytest.mark.django_db

VARIANTS = ("symptoms_example", "symptoms", "code")
SHORT = {"batch_size": 2, "micro_batch_size": 2, "max_steps": 2, "checkpoint_every": 2, "eval_every": 2,
         "max_length": 512, "learning_rate": 1e-2, "lora_r": 4, "lora_alpha": 8, "warmup_steps": 0}


@pytest.fixture(autouse=True)
def folders(settings, tmp_path):
    prompt_templates_ensure()  # a transactional test elsewhere in the suite may have flushed them
    settings.INSTRUCTION_SETS_DIR = tmp_path / "instruction_sets"
    settings.FINETUNE_DIR = tmp_path / "finetune"
    local_backend.loaded_models_clear()
    yield
    local_backend.loaded_models_clear()


@pytest.fixture
def base_model(tiny_model_dir) -> ModelConfig:
    """A base model as Gemma 3 270M is configured: completion prompts."""
    return ModelConfig.objects.create(name="tiny-base", backend="local", model_path=str(tiny_model_dir),
                                      prompt_format="completion", languages=["ru"], temperature=0.0,
                                      max_new_tokens=4, batch_size=4)


def _set(templates: tuple[int, ...] = (), name: str = "rumed") -> InstructionSet:
    request = InstructionSetRequest(name=name, split="train", templates=templates, validation_share=0)
    created = do_build_instruction_set(request=request, actor=None, enqueue=False)
    instruction_set_build_run(created.build.pk)
    built = InstructionSet.objects.get(pk=created.pk)
    assert built.status == InstructionSet.Status.READY, built.error
    return built


def _fine_tuned(base: ModelConfig, instruction_set: InstructionSet, name: str) -> tuple[ModelConfig, dict]:
    job = do_start_finetune(base_config=base, instruction_set=instruction_set, name=name, parameters=SHORT,
                            actor=None, enqueue=False)
    finetune_job_run(job.pk)
    job.refresh_from_db()
    assert job.status == "done", job.error
    return job.result_config, job.run_info


def _generation_prompts(config: ModelConfig, variant: str) -> list[tuple[str, str]]:
    """(system, user) of each item of a job of config, with the template the job form gives config."""
    _model, template = model_and_template_check(model_config=config, variant=variant, language="ru")
    request = PlanRequest(categories=["J06", "I10"], budget=3, allocation="uniform", variant=variant, seed=3)
    job = do_create_job(request=request, model_config=config, prompt_template=template, actor=None, enqueue=False)
    jobs.job_items_build(job)
    return list(job.items.order_by("index").values_list("prompt_system", "prompt_user"))


def test_a_base_model_fine_tuned_on_instructions_gets_them_at_generation_as_in_training(
        base_model, tiny_graph, real_notes):
    instruction_set = _set()
    set_templates = {t["variant"]: t["id"] for t in instruction_set.provenance["templates"]}
    assert instruction_set.provenance["prompt_style"] == "instruction" == instruction_set_prompt_style(instruction_set)
    assert finetune_prompt_format(base_model, instruction_set) == "alpaca"

    tuned, run_info = _fine_tuned(base_model, instruction_set, "tiny-base-medsyn")
    # trained and registered with the method's wrapper, not the base model's completion format
    assert run_info["prompt_format"] == "alpaca" and tuned.prompt_format == "alpaca" and not tuned.is_base_model
    assert ModelConfig.objects.get(pk=base_model.pk).prompt_format == "completion"

    train, _validation = instruction_set_records(instruction_set)
    generation = LocalBackend(tuned)
    tokenizer = generation.loaded.tokenizer
    training = PromptRenderer(base_model, tokenizer, prompt_format=run_info["prompt_format"])
    for variant in VARIANTS:
        # a job of the fine-tuned model gets the templates the set was rendered with ...
        _model, template = model_and_template_check(model_config=tuned, variant=variant, language="ru")
        assert template.pk == set_templates[variant]
        record = next(r for r in train if r["variant"] == variant)
        items = _generation_prompts(tuned, variant)
        assert {system for system, _user in items} == {record["instruction"]}  # the same instruction text
        # ... in the wire format training used: the prompt ids the model reads are the ones it was trained on
        for system, user in items:
            sent = generation.prompt_ids(GenerationRequest(key="g", system=system, user=user))
            assert sent == training.prompt_ids(GenerationRequest(key="t", system=system, user=user))
            assert tokenizer.decode(sent, skip_special_tokens=True).startswith(ALPACA_TEMPLATE[:12])
        encoded = example_encode(record, renderer=training, tokenizer=tokenizer, max_length=100_000)
        sent = generation.prompt_ids(GenerationRequest(key="r", system=record["instruction"], user=record["input"]))
        assert encoded.input_ids[:encoded.prompt_length] == sent


def test_a_set_of_completion_templates_keeps_the_completion_format_end_to_end(base_model, tiny_graph, real_notes):
    completion = tuple(PromptTemplate.objects.get(name=f"default-{variant}-ru-completion", is_current=True).pk
                       for variant in VARIANTS)
    instruction_set = _set(templates=completion, name="rumed-completion")
    assert instruction_set_prompt_style(instruction_set) == "completion"

    tuned, run_info = _fine_tuned(base_model, instruction_set, "tiny-base-completion")
    assert run_info["prompt_format"] == tuned.prompt_format == "completion" and tuned.is_base_model
    for variant, template_id in zip(VARIANTS, completion, strict=True):
        _model, template = model_and_template_check(model_config=tuned, variant=variant, language="ru")
        assert template.pk == template_id
    # an instruct base model trained on completion prompts is registered with them too
    instruct = ModelConfig.objects.create(name="tiny-chat", backend="local", model_path=base_model.model_path,
                                          prompt_format="chat")
    assert finetune_prompt_format(instruct, instruction_set) == "completion"
    assert finetune_prompt_format(instruct, _set(name="rumed-instructions")) == "chat"


def test_a_set_mixing_instruction_and_completion_templates_is_refused(tiny_graph, real_notes):
    mixed = [PromptTemplate.objects.get(name="default-symptoms_example-ru", is_current=True).pk,
             PromptTemplate.objects.get(name="default-symptoms-ru-completion", is_current=True).pk,
             PromptTemplate.objects.get(name="default-code-ru", is_current=True).pk]
    with pytest.raises(ValidationError) as error:
        instruction_set_request_from({"name": "mixed", "split": "train", "templates": mixed})
    assert "not both" in " ".join(error.value.message_dict["templates"])
