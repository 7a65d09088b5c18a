"""Browser: a researcher starts a short LoRA run from the page on the real gpu worker, watches the loss curve grow
while the page polls, sees the adapter registered as a model, and launches a generation job with it from the job
page's link: issue 12's loop, end to end in Chromium (the instruction-set half is test_sets_browser.py)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from generation.models import GenerationJob, ModelConfig
from generation.services import prompt_templates_ensure
from generation.training.models import FineTuneJob
from tests.generation.training.test_finetune import FAST, instruction_set_write

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_a_lora_run_from_the_page_then_notes_with_the_new_adapter(celery_workers, tiny_graph, real_notes,
                                                                  tiny_model_config, make_user, live_login,
                                                                  live_server, tmp_path, settings):
    prompt_templates_ensure()
    settings.FINETUNE_DIR = tmp_path / "finetune"
    ModelConfig.objects.filter(pk=tiny_model_config.pk).update(languages=["ru"])
    instruction_set = instruction_set_write(tmp_path / "sets", name="browser-set")
    page = live_login(make_user("researcher").username)
    page.goto(f"{live_server.url}/training/jobs/new/")
    form = page.locator("[data-testid=finetune-form]")
    form.locator("input[name=name]").fill("tiny-lora")
    form.locator("select[name=base_config]").select_option(str(tiny_model_config.pk))
    form.locator("select[name=instruction_set]").select_option(str(instruction_set.pk))
    for name, value in {**FAST, "max_steps": 12, "target_modules": "q_proj, v_proj"}.items():
        form.locator(f"input[name={name}]").fill(str(value))
    page.click("[data-testid=start-finetune]")

    expect(page.locator("[data-testid=train-loss]")).to_be_visible(timeout=120_000)  # the polled status, no reload
    curve = page.locator("[data-testid=loss-curve] svg")
    expect(curve).to_be_visible()
    expect(page.locator("[data-testid=result-config]")).to_contain_text("tiny-lora", timeout=180_000)
    job = FineTuneJob.objects.get(name="tiny-lora")
    assert job.status == "done" and len(job.metrics) == job.progress_total >= 6  # 3 epochs of 3 steps
    assert curve.locator("polyline, path").count() >= 1  # the train loss, drawn from every step
    adapter = job.result_config
    assert adapter.adapter_path and adapter.name == "tiny-lora"

    page.click("text=Generate with it")
    page.fill("input[name=categories]", "J06")
    page.fill("input[name=budget]", "2")
    page.select_option("select[name=model_config]", value=str(adapter.pk))
    page.click("[data-testid=preview]")
    expect(page.locator("[data-testid=plan-table]")).to_contain_text("J06")
    page.click("[data-testid=launch]")
    expect(page.locator("[data-testid=job-status]")).to_have_text("Done", timeout=180_000)
    generated = GenerationJob.objects.get(model_config=adapter)
    assert generated.ok + generated.failed + generated.skipped == 2
