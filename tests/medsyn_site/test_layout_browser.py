"""No page scrolls sideways: every role's pages at a 1366 px laptop and an 820 px tablet (long generated tokens, wide
tables and the curation pane's flags wrap or scroll inside their own box), and the rating page's controls are big
enough to touch."""

from __future__ import annotations

import pytest
from django.urls import reverse
from playwright.sync_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

WIDTHS = ((1366, 768), (820, 1180))
# One unbroken token as a model may write it: it must wrap, not widen the page.
LONG_TOKEN = "Жалобы:" + "кашель-слабость-температура" * 12


def _overflow(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def _pages_of(page: Page, live_server, extra: list[str]) -> list[str]:
    nav = page.eval_on_selector_all("[data-nav]", "links => links.map(link => link.getAttribute('href'))")
    return list(dict.fromkeys([reverse("home"), *nav, *extra, reverse("profile")]))


def _check(page: Page, live_server, paths: list[str]) -> dict[str, int]:
    wide = {}
    for width, height in WIDTHS:
        page.set_viewport_size({"width": width, "height": height})
        for path in paths:
            response = page.goto(f"{live_server.url}{path}")
            assert response is not None and response.status == 200, (path, response and response.status)
            page.wait_for_load_state("networkidle")
            if (extra := _overflow(page)) > 1:
                wide[f"{path} @ {width}px"] = extra
    return wide


@pytest.fixture
def long_token_note(site):
    from tests.review.conftest import synthetic_make

    return synthetic_make(f"{LONG_TOKEN} Температура 38.", "J06.9")


@pytest.mark.parametrize("role", ["researcher", "curator", "physician", "admin"])
def test_no_page_scrolls_sideways(site, long_token_note, live_login, live_server, role):
    page = live_login(site["users"][role].username)
    extra = {
        "researcher": [reverse("graph:code", args=["J06"]), reverse("generation:notes"),
                       reverse("generation:note", args=[long_token_note.pk]), reverse("generation:new"),
                       reverse("assessment:study_results", args=[site["study"].pk])],
        "curator": [reverse("curation:curation") + "?state=",
                    reverse("curation:curation_note", args=[long_token_note.pk]),
                    reverse("assessment:study_detail", args=[site["study"].pk])],
        "physician": [reverse("assessment:rate_home")],
        "admin": [reverse("status")],
    }[role]
    assert _check(page, live_server, _pages_of(page, live_server, extra)) == {}


def test_the_rating_page_has_touch_sized_controls(site, live_login, live_server):
    page = live_login(site["users"]["physician"].username)
    page.set_viewport_size({"width": 820, "height": 1180})
    page.click("[data-nav='assessment:rate_home']")
    page.click("[data-testid=start-rating]")
    expect(page.locator("[data-testid=note-text]")).to_be_visible()
    sizes = page.eval_on_selector_all(
        "#rating-form label:has(input[type=radio]), #rating-form button[type=submit]",
        "nodes => nodes.map(node => { const box = node.getBoundingClientRect(); return [box.width, box.height]; })")
    assert sizes and all(height >= 40 and width >= 40 for width, height in sizes), sizes
    assert _overflow(page) <= 1
