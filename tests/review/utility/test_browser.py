"""Browser: a researcher starts a tiny evaluation of the approved notes (no release) from the page, the page follows
it on the real default-queue worker to done, and the heat map and the lift chart appear without a reload."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]


def test_a_tiny_evaluation_started_from_the_page_shows_its_heat_map(celery_workers, stored_splits,
                                                                    approved_synthetic, make_user, live_login,
                                                                    live_server):
    page = live_login(make_user("researcher").username)
    page.goto(f"{live_server.url}/review/utility/")
    page.click("[data-testid=new-evaluation-link]")
    expect(page.locator("select[name=real_split]")).to_have_value("train")
    expect(page.locator("select[name=evaluation]")).to_have_value("split:dev")
    page.select_option("select[name=synthetic]", "approved")
    page.select_option("select[name=classifier]", "tfidf-svm")
    page.select_option("select[name=grid]", "quick")
    page.fill("input[name=seeds]", "1")
    page.fill("input[name=bootstrap]", "100")
    page.click("[data-testid=start-evaluation]")

    expect(page.locator("[data-testid=evaluation-title]")).to_contain_text("Utility evaluation")
    expect(page.locator("[data-testid=evaluation-status]")).to_have_text("Done", timeout=120_000)  # polled
    heat_map = page.locator("svg[data-testid=heat-map]")
    expect(heat_map).to_be_visible()
    expect(heat_map.locator("[data-testid='heat-cell-real=1-synthetic=1']")).to_contain_text("%")
    expect(page.locator("svg[data-testid=lift-chart] [data-testid=bar]")).to_have_count(5)
    expect(page.locator("[data-testid=command-line]")).to_contain_text("--approved --eval-split dev")


def test_from_the_release_page_to_the_result_and_back(celery_workers, stored_splits, release, make_user,
                                                       live_login, live_server):
    """Issue 13's path: the release page offers an evaluation, the form comes with the release chosen, the result
    page shows the grid and the lift, and the release page then shows the latest evaluation with a link to it."""
    page = live_login(make_user("researcher").username)
    page.goto(f"{live_server.url}/review/releases/{release.pk}/")
    page.click("[data-testid=release-utility-new]")
    expect(page.locator("select[name=synthetic]")).to_have_value("release")
    page.select_option("select[name=classifier]", "tfidf-svm")
    page.select_option("select[name=grid]", "quick")
    page.fill("input[name=seeds]", "1")
    page.fill("input[name=bootstrap]", "100")
    page.click("[data-testid=start-evaluation]")
    expect(page.locator("[data-testid=evaluation-status]")).to_have_text("Done", timeout=120_000)
    expect(page.locator("svg[data-testid=heat-map]")).to_be_visible()
    expect(page.locator("svg[data-testid=lift-chart]")).to_be_visible()
    expect(page.locator("[data-testid=command-line]")).to_contain_text(f"--release {release.name}:{release.version}")

    page.goto(f"{live_server.url}/review/releases/{release.pk}/")
    block = page.locator("[data-testid=release-utility]")
    expect(block).to_contain_text("accuracy")
    block.locator("[data-testid=release-utility-link]").click()
    expect(page.locator("svg[data-testid=heat-map]")).to_be_visible()
