"""Browser: from a code page, preview a plan, launch it on the real gpu worker, watch progress, open the notes."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from generation.services import prompt_templates_ensure

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_generate_from_a_code_page(celery_workers, tiny_graph, real_notes, tiny_model_config, make_user, live_login,
                                   live_server):
    prompt_templates_ensure()
    page = live_login(make_user("researcher").username)
    page.goto(f"{live_server.url}/graph/code/J06/")
    page.click("[data-testid=generate-notes]")
    expect(page.locator("input[name=categories]")).to_have_value("J06")
    page.fill("input[name=budget]", "3")
    page.select_option("select[name=model_config]", value=str(tiny_model_config.pk))  # labels carry languages, licence
    page.click("[data-testid=preview]")
    table = page.locator("[data-testid=plan-table]")
    expect(table).to_contain_text("J06")
    expect(table.locator("tbody tr td").nth(2)).to_have_text("3")
    page.click("[data-testid=launch]")
    expect(page.locator("h1")).to_contain_text("Generation job")
    expect(page.locator("[data-testid=job-status]")).to_have_text("Done", timeout=60_000)
    expect(page.locator("[data-testid=job-progress]")).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("[data-testid=job-rate]")).to_contain_text("items/s")
    page.click("[data-testid=open-notes]")
    rows = page.locator("[data-testid=notes] tbody tr")
    expect(rows.first).to_contain_text("tiny-local")
    assert rows.count() >= 2
    rows.first.locator("a").first.click()
    expect(page.locator("[data-testid=provenance]")).to_contain_text("default-symptoms_example-ru v1")
    expect(page.locator("[data-testid=example-text]")).to_contain_text("жалуется")
