"""Real-browser tests: search as you type, the code page with ranked symptoms, the neighbourhood view."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def researcher_page(small_graph, make_user, live_login):
    user = make_user("researcher")
    return live_login(user.username)


def test_search_code_page_and_neighbourhood(researcher_page, live_server):
    page = researcher_page
    page.click("[data-nav='graph:search']")
    page.wait_for_load_state()  # htmx binds the search box on load; typing before that sends nothing
    box = page.locator("[data-testid=graph-search]")
    box.fill("J06")
    results = page.locator("[data-testid=search-results]")
    expect(results).to_contain_text("J06.9")
    box.fill("кашель")
    expect(results).to_contain_text("сухой кашель")
    box.fill("J06")
    expect(results).to_contain_text("J06.9")
    results.locator("a", has_text="Acute upper respiratory infections of multiple").first.click()
    expect(page.locator("h1")).to_contain_text("J06")
    expect(page.locator("[data-testid=breadcrumbs]")).to_contain_text("J00-J06")
    rows = page.locator("[data-testid=symptoms] tbody tr")
    expect(rows.first).to_contain_text("кашель")
    counts = [int(c) for c in rows.locator("td:nth-child(2)").all_inner_texts()]
    assert counts == sorted(counts, reverse=True) and len(counts) > 5
    page.click("[data-testid=open-neighbourhood]")
    expect(page.locator("[data-testid=neighbourhood][data-ready='1']")).to_be_visible()
    assert page.evaluate("window.medsynNeighbourhood.nodes().length") > 5
    assert page.evaluate("window.medsynNeighbourhood.$('#Category\\\\:J06').length") == 1
