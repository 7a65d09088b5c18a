"""A Russian-speaking user's first minutes, per role, in Chromium: the language switch, the home page's to-do list,
rating with the Russian keyboard layout's physical keys, the curation queue's default view and a refused key's
message, all in Russian; then the same home page in English."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def ru(message: str) -> str:
    with translation.override("ru"):
        translated = gettext(message)
    assert translated != message, f"no Russian for {message!r}"
    return translated


def _to_russian(page: Page) -> None:
    page.click("[data-testid=language-switch] [data-language=ru]")
    expect(page.locator("html")).to_have_attribute("lang", "ru")


def test_a_physician_rates_in_russian_with_the_russian_layout(site, live_login, live_server):
    page = live_login(site["users"]["physician"].username)
    _to_russian(page)
    todo = page.locator("[data-testid=todo-rating]")
    expect(todo).to_contain_text(ru("Notes to rate"))
    todo.locator("[data-testid=todo-study]").first.click()
    expect(page.locator("[data-testid=note-text]")).to_be_visible()
    expect(page.locator("#rating-form")).to_contain_text(ru("Clinician (real)"))
    page.locator("h1").click()
    for code, key in [("KeyS", "ы"), ("Digit4", "4"), ("Digit3", "3"), ("Digit4", "4"), ("Digit5", "5"),
                      ("Digit2", "2")]:
        page.dispatch_event("h1", "keydown", {"code": code, "key": key, "bubbles": True})
    expect(page.locator("input[name=origin][value=synthetic]")).to_be_checked()
    page.dispatch_event("h1", "keydown", {"code": "Enter", "key": "Enter", "bubbles": True})
    expect(page.locator("[data-testid=progress]")).to_contain_text("1")

    page.goto(f"{live_server.url}{reverse('home')}")
    page.click("[data-testid=language-switch] [data-language=en]")  # the choice is the user's, on every page
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("[data-testid=todo-rating]")).to_contain_text("Notes to rate")


def test_a_curator_meets_the_queue_and_a_refused_key_in_russian(site, live_login, live_server):
    page = live_login(site["users"]["curator"].username)
    _to_russian(page)
    expect(page.locator("[data-testid=todo-curation]")).to_contain_text(ru("Notes to curate"))
    page.click("[data-testid=todo-curation] .button")
    expect(page.locator("#curation-filter select[name=state]")).to_have_value("to_review")
    expect(page.locator("[data-testid=state-legend] summary")).to_have_text(ru("What the states mean"))
    generated = page.locator(".queue-row").first
    note_id = generated.get_attribute("data-note")
    generated.locator("td").nth(1).click()
    expect(page.locator("[data-testid=curation-note]")).to_have_attribute("data-note", note_id)
    expect(page.locator("[data-testid=note-state]")).to_have_text(ru("Generated"))  # the oldest note: generated
    page.locator("h1").click()
    page.dispatch_event("h1", "keydown", {"code": "KeyA", "key": "ф", "bubbles": True})
    expect(page.locator("[data-testid=key-message]")).to_contain_text(
        ru("A generated note is submitted for review first (key S)."))


def test_a_researcher_goes_from_a_code_to_a_plan_in_russian(site, live_login, live_server):
    from graph.names import code_display_name

    page = live_login(site["users"]["researcher"].username)
    _to_russian(page)
    expect(page.locator("[data-testid=todo-jobs]")).to_contain_text(ru("Generation jobs"))
    page.goto(f"{live_server.url}{reverse('graph:code', args=['J06'])}")
    with translation.override("ru"):
        name = code_display_name("J06")
    expect(page.locator("[data-testid=code-name]")).to_have_text(name)  # the Russian ICD-10 name
    page.click("[data-testid=generate-notes]")
    expect(page.locator("h1")).to_have_text(ru("New generation job"))
    expect(page.locator("input[name=categories]")).to_have_value("J06")


def test_an_admin_reads_the_status_page_in_russian(site, live_login, live_server):
    page = live_login(site["users"]["admin"].username)
    _to_russian(page)
    page.goto(f"{live_server.url}{reverse('status')}")
    expect(page.locator("h1")).to_have_text(ru("System status"))
    expect(page.locator("[data-testid=overall-status]")).not_to_be_empty()
