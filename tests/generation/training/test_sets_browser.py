"""Browser: a researcher previews an instruction set, builds it on the real default-queue worker, watches the page
follow the build to ready, and downloads the JSONL."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import expect

from generation.services import prompt_templates_ensure
from generation.training.models import InstructionSet

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_preview_build_and_download_an_instruction_set(celery_workers, tiny_graph, real_notes, make_user,
                                                       live_login, live_server, tmp_path):
    prompt_templates_ensure()
    page = live_login(make_user("researcher").username)
    page.goto(f"{live_server.url}/training/sets/")
    page.click("[data-testid=new-set-link]")
    expect(page.locator("select[name=split]")).to_have_value("train")
    page.fill("input[name=validation_share]", "0.2")
    page.click("[data-testid=set-preview-button]")
    categories = page.locator("[data-testid=set-preview-categories]")
    expect(categories).to_contain_text("J06")
    expect(page.locator("[data-testid=set-preview-total]")).to_contain_text("15 records from 5 notes")

    page.fill("input[name=name]", "browser-set")
    page.click("[data-testid=set-build]")
    expect(page.locator("[data-testid=set-title]")).to_have_text("browser-set v1")
    expect(page.locator("[data-testid=set-status]")).to_have_text("Ready", timeout=90_000)  # polled, no reload
    built = InstructionSet.objects.get(name="browser-set")
    expect(page.locator("[data-testid=set-sha256]")).to_have_text(built.sha256)
    with page.expect_download() as download:
        page.click("[data-file='train.jsonl']")
    path = tmp_path / "train.jsonl"
    download.value.save_as(path)
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(records) == built.n_train + built.n_validation > 0
    assert {record["part"] for record in records} <= {"train", "validation"}
    page.click("text=All instruction sets")
    expect(page.locator("[data-testid=sets]")).to_contain_text("browser-set v1")
