"""The Content-Security-Policy in a real browser: every role's main pages load and their htmx and script behaviours
still work, with no violation reported and no error in the console (the server side is test_security.py)."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from django.urls import reverse
from playwright.sync_api import ConsoleMessage, Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

# Runs in every document before its own scripts (Playwright injects it past the policy): each violation the browser
# reports is handed to the test, across navigations.
REPORT_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (event) => {
  window.__medsynCspViolation({page: location.href, directive: event.violatedDirective, blocked: event.blockedURI,
                               source: event.sourceFile, line: event.lineNumber, sample: event.sample});
});
"""


@dataclasses.dataclass
class BrowserLog:
    page: Page
    violations: list[dict] = dataclasses.field(default_factory=list)
    console_errors: list[str] = dataclasses.field(default_factory=list)
    page_errors: list[str] = dataclasses.field(default_factory=list)
    pages: list[str] = dataclasses.field(default_factory=list)

    def assert_clean(self) -> None:
        self.page.wait_for_timeout(300)  # reports of the last page reach the test asynchronously
        assert self.pages, "no page was loaded"
        assert self.violations == [], json.dumps(self.violations, indent=1, ensure_ascii=False)
        assert self.console_errors == [], self.console_errors
        assert self.page_errors == [], self.page_errors


@pytest.fixture
def browser_log(page: Page) -> BrowserLog:
    log = BrowserLog(page)
    page.expose_function("__medsynCspViolation", lambda violation: log.violations.append(violation))
    page.add_init_script(REPORT_VIOLATIONS)

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            log.console_errors.append(f"{page.url}: {message.text} ({message.location.get('url')})")

    page.on("console", console)
    page.on("pageerror", lambda error: log.page_errors.append(f"{page.url}: {error}"))
    page.on("load", lambda loaded: log.pages.append(loaded.url))
    return log


def _open(page: Page, live_server, path: str) -> None:
    response = page.goto(f"{live_server.url}{path}")
    assert response is not None and response.status == 200, (path, response and response.status)
    page.wait_for_load_state("networkidle")


def _profile_and_token(page: Page, live_server) -> None:
    """The profile page, reached from the header: a new token is shown once, then revoked."""
    page.click("[data-testid=profile-link]")
    expect(page.locator("h1")).to_have_text("Your profile")
    page.click("[data-testid=token-new]")
    expect(page.locator("[data-testid=new-token]")).to_have_text(re.compile(r"^\s*[0-9a-f]{40}\s*$"))
    expect(page.locator("[data-testid=token-status]")).to_contain_text("valid until")
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.dismiss()))
    page.click("[data-testid=token-revoke]")  # medsyn.js asks first (data-confirm); dismissed, nothing is sent
    page.wait_for_timeout(300)
    assert page.url.endswith(reverse("profile_token_renew"))
    expect(page.locator("[data-testid=new-token]")).to_be_visible()
    assert asked == ["Revoke your API token? Programs that use it stop working."]
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("[data-testid=token-revoke]")
    expect(page.locator("[data-testid=token-status]")).to_contain_text("You have no API token.")


def test_researcher_pages_under_the_policy(site, live_login, live_server, browser_log):
    page = live_login(site["users"]["researcher"].username)
    page.click("[data-nav='graph:search']")
    page.wait_for_load_state("networkidle")  # htmx binds the search box on load
    box = page.locator("[data-testid=graph-search]")
    results = page.locator("[data-testid=search-results]")
    box.fill("J06")
    expect(results).to_contain_text("J06")
    box.fill("кашель")
    expect(results).to_contain_text("кашель")
    _open(page, live_server, reverse("graph:code", args=["J06"]))
    page.click("[data-testid=open-neighbourhood]")
    expect(page.locator("[data-testid=neighbourhood][data-ready='1']")).to_be_visible()

    _open(page, live_server, reverse("generation:home"))
    _open(page, live_server, reverse("generation:new"))
    page.fill("input[name=categories]", "J06")
    page.fill("input[name=budget]", "3")
    from generation.models import ModelConfig

    remote = ModelConfig.objects.get(name="remote-test")  # offered by value: labels carry languages and licence
    page.select_option("select[name=model_config]", value=str(remote.pk))
    page.click("[data-testid=preview]")  # htmx POST, CSRF token from hx-headers
    expect(page.locator("[data-testid=plan-table]")).to_contain_text("J06")

    _open(page, live_server, reverse("assessment:studies"))
    _open(page, live_server, reverse("assessment:study_results", args=[site["study"].pk]))
    expect(page.locator("figure.plot svg")).to_have_count(2)
    _open(page, live_server, reverse("releases:releases"))
    _profile_and_token(page, live_server)

    _open(page, live_server, reverse("api-docs"))  # Swagger UI, started by its script file
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("MedSyn Studio API")
    expect(page.locator(".swagger-ui .opblock").first).to_be_visible()
    browser_log.assert_clean()


def test_curator_pages_under_the_policy(site, live_login, live_server, browser_log):
    page = live_login(site["users"]["curator"].username)
    page.click("[data-nav='curation:curation']")
    expect(page.locator("[data-testid=queue-count]")).to_have_text("9 notes")  # to review: 6 generated, 3 pending
    page.select_option("#curation-filter select[name=state]", "pending_review")  # htmx reloads the queue
    expect(page.locator("[data-testid=queue-count]")).to_have_text("3 notes")
    note = site["queued"][0]
    page.locator(f".queue-row[data-note='{note.pk}'] td").nth(1).click()  # the pane comes by htmx
    expect(page.locator("[data-testid=curation-note]")).to_have_attribute("data-note", str(note.pk))
    page.click("[data-testid=note-actions] [data-action=approve]")
    expect(page.locator("[data-testid=note-state]")).to_have_text("Approved")
    expect(page.locator("[data-testid=queue-count]")).to_have_text("2 notes")  # the queue reloads on its event
    page.locator("h1").click()
    page.keyboard.press("j")  # curation.js
    expect(page.locator("[data-testid=curation-note]")).to_have_attribute("data-note", str(site["queued"][1].pk))

    _open(page, live_server, reverse("assessment:study_detail", args=[site["study"].pk]))
    _open(page, live_server, reverse("releases:releases"))
    page.fill("input[name=name]", "csp-release")
    page.click("[data-testid=release-preview-button]")  # htmx with hx-vals (JSON, no eval)
    expect(page.locator("[data-testid=release-preview]")).not_to_be_empty()

    _open(page, live_server, reverse("status"))
    with page.expect_response(lambda r: r.url.endswith("/status/") and r.request.headers.get("hx-request") == "true",
                              timeout=15000) as polled:
        pass  # the components table refreshes itself every 5 s
    assert polled.value.status in (200, 503)
    _profile_and_token(page, live_server)
    browser_log.assert_clean()


def test_physician_pages_under_the_policy(site, live_login, live_server, browser_log):
    page = live_login(site["users"]["physician"].username)
    page.click("[data-nav='assessment:rate_home']")
    page.click("text=Start / continue")
    expect(page.locator("[data-testid=note-text]")).to_be_visible()
    expect(page.locator("[data-testid=progress]")).to_contain_text("0 of")
    page.locator("h1").click()
    for key in ["s", "4", "3", "4", "5", "2", "Enter"]:  # rate.js
        page.keyboard.press(key)
    expect(page.locator("[data-testid=progress]")).to_contain_text("1 of")
    _profile_and_token(page, live_server)
    browser_log.assert_clean()


def test_admin_pages_under_the_policy(site, live_login, live_server, browser_log):
    admin = site["users"]["admin"]
    page = live_login(admin.username)
    for path in (reverse("admin:index"), reverse("admin:auth_user_changelist"),
                 reverse("admin:auth_user_change", args=[admin.pk]), reverse("admin:authtoken_tokenproxy_changelist"),
                 reverse("status"), reverse("graph:search"), reverse("curation:curation")):
        _open(page, live_server, path)
    browser_log.assert_clean()


def test_the_watch_sees_what_the_policy_blocks(live_server, page, browser_log, settings):
    """The other tests would pass with a watch that sees nothing: a page the policy forbids must be reported."""
    from medsyn_site.security import csp_header_value

    probe = f"{live_server.url}/csp-probe/"
    page.route(probe, lambda route: route.fulfill(
        status=200, content_type="text/html",
        headers={"Content-Security-Policy": csp_header_value(settings.CONTENT_SECURITY_POLICY)},
        body="<html><body><script>window.ran = true</script><img src=x onerror='window.ran = true'>"
             "<script src='https://cdn.example.org/x.js'></script></body></html>"))
    page.goto(probe)
    page.wait_for_load_state("load")
    assert page.evaluate("window.ran") is None
    blocked = {(v["directive"], v["blocked"]) for v in browser_log.violations}
    assert {("script-src-elem", "inline"), ("script-src-attr", "inline"),
            ("script-src-elem", "https://cdn.example.org/x.js")} <= blocked, browser_log.violations
