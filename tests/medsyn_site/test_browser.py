"""Real-browser tests of the foundation: roles and navigation, the status page and an outage."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from medsyn_site.env import graph_from_url
from medsyn_site.stack import falkordb_start, free_port, process_group_stop

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

EXPECTED_NAV = {
    "physician": {"assessment:rate_home"},
    "curator": {"graph:search", "assessment:studies", "curation:curation", "releases:releases", "status"},
    "researcher": {"graph:search", "generation:home", "training:finetune_jobs", "assessment:studies",
                   "releases:releases", "utility:evaluations", "status"},
    # No "Rate notes" for the admin: it sees origins, so it may not rate (blinding).
    "admin": {"graph:search", "generation:home", "training:finetune_jobs", "assessment:studies", "curation:curation",
              "releases:releases", "utility:evaluations", "status", "admin"},
}


@pytest.mark.parametrize("role", ["physician", "curator", "researcher", "admin"])
def test_each_role_logs_in_and_sees_its_navigation(role, make_user, live_login, live_server):
    from django.urls import NoReverseMatch, reverse

    def wired(name: str) -> bool:
        try:
            return name == "admin" or bool(reverse(name))
        except NoReverseMatch:
            return False

    user = make_user(role)
    page = live_login(user.username)
    expect(page.locator(".who")).to_contain_text(role)
    shown = set(page.locator("[data-testid=main-nav] a").evaluate_all("els => els.map(e => e.dataset.nav)"))
    assert shown == {name for name in EXPECTED_NAV[role] if wired(name)}
    page.click("text=Log out")
    expect(page).to_have_url(f"{live_server.url}/accounts/login/")


def test_wrong_password_is_refused(make_user, live_server, page):
    make_user("curator", username="c1")
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "c1")
    page.fill("input[name=password]", "nope")
    page.click("[data-testid=login-submit]")
    expect(page.locator("main [role=alert]")).to_contain_text("didn't match")


def test_password_change(make_user, live_login, live_server):
    user = make_user("physician")
    page = live_login(user.username)
    page.click(".account >> text=Password")
    page.fill("input[name=old_password]", "pw-test-123456")
    page.fill("input[name=new_password1]", "Another-Long-Pass-42")
    page.fill("input[name=new_password2]", "Another-Long-Pass-42")
    page.click("main button[type=submit]")
    expect(page.locator("h1")).to_contain_text("changed")
    user.refresh_from_db()
    assert user.check_password("Another-Long-Pass-42")


def test_status_page_green_then_red_when_graph_stops_then_green(
    make_user, live_login, live_server, celery_workers, settings, tmp_path
):
    # A graph server of this test's own, so stopping it touches nothing else in the suite.
    port = free_port()
    server = falkordb_start(port, tmp_path / "g", persist=False, log=tmp_path / "g.log")
    settings.GRAPH = graph_from_url("GRAPH_URL", f"falkordb://127.0.0.1:{port}/status_test")
    try:
        user = make_user("admin")
        page = live_login(user.username)
        page.goto(f"{live_server.url}/status/")
        expect(page.locator("[data-testid=overall-status]")).to_have_text("All components are up.")
        for row in page.locator("tr[data-component]").all():
            expect(row.locator(".state")).to_have_attribute("data-state", "up")
        expect(page.locator("[data-testid=outage-banner]")).to_have_count(0)

        process_group_stop(server.pid, timeout=5)
        page.reload()
        graph_row = page.locator("tr[data-component=graph]")
        expect(graph_row.locator(".state")).to_have_text("Down")
        expect(graph_row.locator(".detail")).to_contain_text("unreachable")
        expect(page.locator("[data-testid=outage-banner]")).to_contain_text("Graph database")
        page.goto(f"{live_server.url}/")
        expect(page.locator("[data-testid=outage-banner]")).to_contain_text("Graph database")

        server = falkordb_start(port, tmp_path / "g", persist=False, log=tmp_path / "g.log")
        page.goto(f"{live_server.url}/status/")
        # The table refreshes itself by htmx polling as well; either way it turns green.
        expect(page.locator("tr[data-component=graph] .state")).to_have_text("Up", timeout=15000)
        expect(page.locator("[data-testid=overall-status]")).to_have_text("All components are up.")
    finally:
        process_group_stop(server.pid, timeout=5)
