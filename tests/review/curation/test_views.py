"""Curation and release pages and API: permissions, htmx partials, downloads, and the real-browser flows."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from generation.models import Note
from review.curation.models import NoteCuration, ScanJob
from review.curation.selectors import note_curation
from review.curation.services import do_transition_note
from review.releases.models import Release
from review.releases.services import do_create_release, release_export_run
from tests.review.conftest import synthetic_make
from tests.review.curation.factories import NoteCurationFactory


def _submit_all(curator, notes) -> None:
    for note in notes:
        do_transition_note(actor=curator, note=note, action="submit")


def _state(note: Note) -> str:
    return note_curation(Note.objects.get(pk=note.pk)).state


@pytest.mark.parametrize(("role", "curation", "releases"), [
    ("physician", 403, 403), ("researcher", 403, 200), ("curator", 200, 200), ("admin", 200, 200)])
def test_who_reaches_curation_and_releases(client, make_user, curation_pool, role, curation, releases):
    client.force_login(make_user(role))
    assert client.get(reverse("curation:curation")).status_code == curation
    assert client.get(reverse("releases:releases")).status_code == releases
    note = curation_pool["synthetic"][0]
    response = client.post(reverse("curation:curation_transition", args=[note.pk, "submit"]))
    assert response.status_code == (302 if curation == 200 else 403)
    assert _state(note) == ("pending_review" if curation == 200 else "generated")


def test_note_pane_shows_inputs_scores_and_refusals(client, make_user, curation_pool):
    curator = make_user("curator")
    client.force_login(curator)
    note = curation_pool["synthetic"][0]
    pane = client.get(reverse("curation:curation_note", args=[note.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert "кашель; слабость" in pane and curation_pool["real"][0].text[:40] in pane and "symptom_recall" in pane
    response = client.post(reverse("curation:curation_transition", args=[note.pk, "approve"]), HTTP_HX_REQUEST="true")
    assert "“Approve” does not apply to note" in response.content.decode()
    assert response["HX-Trigger"] == "curation-changed"
    submitted = client.post(reverse("curation:curation_transition", args=[curation_pool["synthetic"][1].pk, "submit"]),
                            HTTP_HX_REQUEST="true").content.decode()
    assert "Note submitted for review (Generated → Pending review)" in submitted  # the history names the event
    assert "held back: not approved (Generated)" in response.content.decode()
    assert _state(note) == "generated"
    NoteCurationFactory(note=note, state="approved", memorisation_checked_version=1, memorised=True,
                        memorisation_real_note=curation_pool["real"][0], memorisation_ngram=13)
    pane = client.get(reverse("curation:curation_note", args=[note.pk]), HTTP_HX_REQUEST="true").content.decode()
    assert "shares a run of 13 words with real note" in pane and 'data-testid="override"' in pane
    assert ("held back: not checked for near duplicates at the current version (run the near-duplicate scan); "
            "memorised a real note (flag not overridden)") in pane


def test_queue_page_filters(client, make_user, curation_pool):
    curator = make_user("curator")
    _submit_all(curator, curation_pool["synthetic"])
    client.force_login(curator)
    page = client.get(reverse("curation:curation"), {"model": "smollm2", "sort": "-recall"}).content.decode()
    assert "3 notes" in page
    partial = client.get(reverse("curation:curation"), {"code": "K21", "state": ""}, HTTP_HX_REQUEST="true",
                         HTTP_HX_TARGET="queue").content.decode()
    assert "1 note" in partial and "<html" not in partial


def test_api_curation_and_releases(make_user, curation_pool, settings, tmp_path):
    settings.RELEASES_DIR = tmp_path
    api = APIClient()
    api.force_authenticate(make_user("curator"))
    synthetic = curation_pool["synthetic"]
    assert api.get("/api/review/curation/notes/", {"model": "gpt-4"}).json()["count"] == 3
    preview = api.post("/api/review/curation/bulk/", {"action": "submit", "filters": {"model": "gpt-4"}},
                       format="json").json()
    assert preview == {"matching": 3, "eligible": 3, "skipped": 0}
    stale = api.post("/api/review/curation/bulk/", {"action": "submit", "filters": {}, "expected": 3}, format="json")
    assert stale.status_code == 409 and "not the 3 of the preview" in stale.json()["detail"]
    assert api.post("/api/review/curation/bulk/", {"action": "submit", "filters": {"model": "gpt-4"}, "expected": 3},
                    format="json").json() == {"changed": 3}
    refused = api.post(f"/api/review/curation/notes/{synthetic[1].pk}/actions/", {"action": "reject"}, format="json")
    assert refused.status_code == 409 and "reason is required" in refused.json()["detail"]
    approved = api.post(f"/api/review/curation/notes/{synthetic[1].pk}/actions/", {"action": "approve"}, format="json")
    assert approved.json()["curation"]["state"] == "approved"
    bad = api.get("/api/review/curation/notes/", {"recall_min": "много"})
    assert bad.status_code == 400 and "recall_min" in bad.json()
    NoteCurationFactory(note=synthetic[1], scanned=True)
    dry = api.post("/api/review/releases/", {"name": "api-release", "preview": True}, format="json").json()
    assert dry["total"] == 1
    created = api.post("/api/review/releases/", {"name": "api-release", "description": "Через API"}, format="json")
    assert created.status_code == 201 and created.json()["note_count"] == 1
    release_id = created.json()["id"]
    release_export_run(release_id)
    export = api.get(f"/api/review/releases/{release_id}/").json()["export"]
    assert export["status"] == "done" and export["percent"] == 100
    download = api.get(f"/api/review/releases/{release_id}/files/jsonl/train.jsonl")
    row = json.loads(b"".join(download.streaming_content).decode())
    assert row["response"] == synthetic[1].text and row["note_id"] == synthetic[1].pk
    assert api.get(f"/api/review/releases/{release_id}/files/../../etc/passwd").status_code == 404
    assert api.get("/api/review/releases/").json()[0]["name"] == "api-release"
    diff = api.get(f"/api/review/releases/{release_id}/diff/{release_id}/").json()
    assert diff == {"added": [], "removed": [], "changed": [], "unchanged": 1}
    researcher = APIClient()
    researcher.force_authenticate(make_user("researcher"))
    assert researcher.post("/api/review/releases/", {"name": "nope"}, format="json").status_code == 403
    assert researcher.get(f"/api/review/releases/{release_id}/files/README.md").status_code == 200


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_curator_approves_rejects_and_bulk_approves_in_the_browser(make_user, curation_pool, live_server, page,
                                                                   live_login):
    from playwright.sync_api import expect

    curator = make_user("curator")
    synthetic = curation_pool["synthetic"]
    _submit_all(curator, synthetic)
    live_login(curator.username)
    page.click("[data-nav='curation:curation']")
    expect(page.locator("[data-testid=queue-count]")).to_have_text("6 notes")
    page.locator(f".queue-row[data-note='{synthetic[0].pk}'] td").nth(1).click()
    pane = page.locator("[data-testid=curation-note]")
    expect(pane).to_contain_text("кашель; слабость")
    page.click("[data-testid=note-actions] [data-action=approve]")
    expect(page.locator("[data-testid=note-state]")).to_have_text("Approved")
    expect(page.locator("[data-testid=queue-count]")).to_have_text("5 notes")

    page.locator("h1").click()
    page.keyboard.press("j")  # the first note of the refreshed queue
    expect(pane).to_have_attribute("data-note", str(synthetic[1].pk))
    page.keyboard.press("r")  # reject needs a reason: the reason box takes the focus
    expect(page.locator("[data-testid=reason]")).to_be_focused()
    page.keyboard.type("Неверная дозировка")
    page.keyboard.press("Enter")
    expect(page.locator("[data-testid=note-state]")).to_have_text("Rejected")
    assert NoteCuration.objects.get(note=synthetic[1]).reason == "Неверная дозировка"

    # A generated note (not yet submitted) is in the queue by default; with the Russian layout active, the physical
    # A key ("ф") on it says why it cannot be approved, and the S key ("ы") submits it.
    generated = synthetic_make("Жалобы на кашель. Сгенерировано для проверки клавиш.", "J06.9")
    page.reload()
    expect(page.locator(f".queue-row[data-note='{generated.pk}']")).to_be_visible()
    page.locator(f".queue-row[data-note='{generated.pk}'] td").nth(1).click()
    expect(pane).to_have_attribute("data-note", str(generated.pk))
    page.locator("h1").click()
    page.dispatch_event("h1", "keydown", {"code": "KeyA", "key": "ф", "bubbles": True})
    expect(page.locator("[data-testid=key-message]")).to_contain_text("submitted for review first")
    assert NoteCuration.objects.filter(note=generated).first() is None
    page.dispatch_event("h1", "keydown", {"code": "KeyS", "key": "ы", "bubbles": True})
    expect(page.locator("[data-testid=note-state]")).to_have_text("Pending review")
    do_transition_note(actor=curator, note=generated, action="reject", reason="проверка клавиш")
    page.reload()

    page.fill("#curation-filter input[name=model]", "smollm2")
    page.locator("#curation-filter input[name=model]").press("Enter")
    expect(page.locator("[data-testid=queue-count]")).to_have_text("2 notes")  # smollm2: 3, one approved
    page.click("[data-testid=bulk] summary")
    page.select_option("[data-testid=bulk-form] select[name=action]", "approve")
    page.click("[data-testid=bulk-preview]")
    expect(page.locator("[data-testid=bulk-count]")).to_contain_text("will change 2 of the 2 notes")
    page.click("[data-testid=bulk-confirm]")
    expect(page.locator("[data-testid=bulk-done]")).to_have_text("2 notes changed.")
    expect(page.locator("[data-testid=queue-count]")).to_have_text("0 notes")
    states = dict(NoteCuration.objects.values_list("note_id", "state"))
    assert [states[n.pk] for n in synthetic] == ["approved", "rejected", "approved", "pending_review", "approved",
                                                 "pending_review"]


@pytest.mark.browser
@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_curator_scans_creates_a_release_and_researcher_downloads_it(make_user, curation_pool, live_server, page,
                                                                     live_login, celery_workers, settings):
    from playwright.sync_api import expect

    curator = make_user("curator")
    for note in curation_pool["synthetic"][:4]:
        do_transition_note(actor=curator, note=note, action="submit")
        do_transition_note(actor=curator, note=note, action="approve")
    live_login(curator.username)
    page.goto(f"{live_server.url}{reverse('curation:curation')}")
    for kind in ("memorisation", "duplicates"):  # a release takes only notes both scans passed
        page.click(f"[data-testid=scan-start-{kind}]")
        expect(page.locator(f"[data-testid=scan-status-{kind}] [data-testid=scan-state]")).to_have_text(
            "Done", timeout=60000)
        assert ScanJob.objects.get(kind=kind).progress_done == 6

    page.click("[data-nav='releases:releases']")
    page.fill("input[name=name]", "medsyn-demo")
    page.fill("textarea[name=description]", "Одобренные заметки")
    page.click("[data-testid=release-preview-button]")
    expect(page.locator("[data-testid=release-preview-count]")).to_contain_text("4 notes would be released")
    page.click("[data-testid=release-create]")
    expect(page.locator("[data-testid=release-title]")).to_have_text("medsyn-demo v1")
    expect(page.locator("[data-testid=export-status]")).to_have_text("Done", timeout=60000)
    page.click("text=Log out")

    live_login(make_user("researcher").username)
    page.click("[data-nav='releases:releases']")
    page.click("text=medsyn-demo v1")
    with page.expect_download() as info:
        page.click("[data-file='jsonl/train.jsonl']")
    rows = [json.loads(line) for line in Path(info.value.path()).read_text(encoding="utf-8").splitlines()]
    release = Release.objects.get(name="medsyn-demo")
    assert info.value.suggested_filename == "medsyn-demo-v1-jsonl-train.jsonl"
    assert [r["response"] for r in rows] == list(release.notes.order_by("idx").values_list("text", flat=True))
    assert {r["note_id"] for r in rows} == {n.pk for n in curation_pool["synthetic"][:4]}
    assert release.export.status == "done" and release.created_by == curator


def test_release_page_lists_files_and_diff(client, make_user, curation_pool, settings, tmp_path):
    settings.RELEASES_DIR = tmp_path
    curator = make_user("curator")
    for note in curation_pool["synthetic"][:2]:
        do_transition_note(actor=curator, note=note, action="submit")
        do_transition_note(actor=curator, note=note, action="approve")
        NoteCurationFactory(note=note, scanned=True)
    first = do_create_release(actor=curator, name="pages", filters={"code": "J06"})
    second = do_create_release(actor=curator, name="pages", filters={})
    release_export_run(second.pk)
    client.force_login(make_user("researcher"))
    page = client.get(reverse("releases:release_detail", args=[second.pk])).content.decode()
    assert "csv/train.csv" in page and "SHA256SUMS" in page and "pages v2" in page
    diff = client.get(reverse("releases:release_diff", args=[first.pk, second.pk])).content.decode()
    assert "1 added, 0 removed, 0 edited, 1 unchanged." in diff
    assert client.get(reverse("releases:release_download", args=[first.pk, "README.md"])).status_code == 404


def test_bulk_and_release_refuse_a_filter_they_cannot_read(client, make_user, curation_pool):
    client.force_login(make_user("curator"))
    response = client.post(reverse("curation:curation_bulk"), {"action": "submit", "recall_min": "много",
                                                             "expected": "6"}, HTTP_HX_REQUEST="true")
    assert "Fix the filter first" in response.content.decode()
    assert not NoteCuration.objects.exists()  # not applied to every note
    preview = client.post(reverse("releases:releases"), {"preview": "1", "code": "J06"}, HTTP_HX_REQUEST="true")
    assert "0 notes would be released" in preview.content.decode()  # no name needed for a preview
    refused = client.post(reverse("releases:releases"), {"name": "x", "licence": "mit", "job": "0"})
    assert refused.status_code == 400 and not Release.objects.exists()


def test_scan_status_polls_until_the_scan_has_finished(client, make_user, curation_pool):
    from review.curation.scans import do_start_scan, scan_run

    client.force_login(make_user("curator"))
    started = client.post(reverse("curation:scan_start", args=["duplicates"]), HTTP_HX_REQUEST="true")
    scan = ScanJob.objects.get()
    assert 'hx-trigger="every 1s"' in started.content.decode() and "Queued" in started.content.decode()
    assert client.post(reverse("curation:scan_start", args=["everything"])).status_code == 404
    ScanJob.objects.filter(pk=scan.pk).update(status="running", progress_done=3, progress_total=6)
    running = client.get(reverse("curation:scan_status", args=[scan.pk]), HTTP_HX_REQUEST="true")
    assert running.status_code == 200 and "3 of 6 notes" in running.content.decode()
    assert 'aria-valuenow="50"' in running.content.decode()
    scan_run(scan.pk)
    done = client.get(reverse("curation:scan_status", args=[scan.pk]), HTTP_HX_REQUEST="true")
    assert done.status_code == 286 and "6 of 6 notes" in done.content.decode()  # htmx stops polling
    assert do_start_scan(actor=None, kind="duplicates", queue=False) != scan


def test_the_bulk_form_refuses_keys_it_does_not_know(client, make_user, curation_pool):
    """A crafted key (or a renamed field) would be ignored and the action would change every note."""
    client.force_login(make_user("curator"))
    for expected in ({}, {"expected": "6"}):
        response = client.post(reverse("curation:curation_bulk"), {
            "action": "submit", "icd_code__regex": "^J06", "foo": "1", "code": "", **expected}, HTTP_HX_REQUEST="true")
        text = response.content.decode()
        assert "Fix the filter first" in text and "foo, icd_code__regex" in text
    assert not NoteCuration.objects.exists()
    preview = client.post(reverse("curation:curation_bulk"), {"action": "submit", "code": "J06", "state": "",
                                                              "sort": "id", "reason": ""}, HTTP_HX_REQUEST="true")
    assert "will change 1 of the 1 notes" in preview.content.decode()  # every key the page sends is known


def test_the_bulk_form_refuses_unicode_digits_and_nul_bytes(client, make_user, curation_pool):
    client.force_login(make_user("curator"))
    bulk = reverse("curation:curation_bulk")
    count = client.post(bulk, {"action": "submit", "expected": "٦"}, HTTP_HX_REQUEST="true").content.decode()
    assert "Bad count." in count  # int() reads "٦" as 6: the count of the preview must be the one shown
    job = client.post(bulk, {"action": "submit", "job": "٢", "expected": "3"}, HTTP_HX_REQUEST="true")
    assert "Fix the filter first" in job.content.decode() and "Generation job" in job.content.decode()
    reason = client.post(bulk, {"action": "submit", "reason": "ok\x00", "expected": "6"}, HTTP_HX_REQUEST="true")
    assert reason.status_code == 200 and "Null characters are not allowed." in reason.content.decode()
    code = client.post(bulk, {"action": "submit", "code": "J\x00", "expected": "1"}, HTTP_HX_REQUEST="true")
    assert "Fix the filter first" in code.content.decode()
    assert not NoteCuration.objects.exists()


def test_a_nul_byte_in_a_reason_is_a_form_error_not_a_500(client, make_user, curation_pool):
    client.force_login(make_user("curator"))
    note = curation_pool["synthetic"][0]
    for action in ("submit", "override"):
        url = (reverse("curation:curation_override", args=[note.pk]) if action == "override"
               else reverse("curation:curation_transition", args=[note.pk, action]))
        pane = client.post(url, {"reason": "Причина\x00"}, HTTP_HX_REQUEST="true")
        assert pane.status_code == 200 and "Null characters are not allowed." in pane.content.decode()
        page = client.post(url, {"reason": "\x00"}, follow=True)
        assert page.status_code == 200 and "Null characters are not allowed." in page.content.decode()
    assert _state(note) == "generated"


def test_the_queue_page_refuses_unicode_digits(client, make_user, curation_pool):
    client.force_login(make_user("curator"))
    page = client.get(reverse("curation:curation"), {"job": "٢", "state": ""})
    assert page.status_code == 200 and "Not applied: Generation job: Enter a whole number." in page.content.decode()
    assert "6 notes" in page.content.decode()  # the invalid filter is said, not applied
    partial = client.get(reverse("curation:curation"), {"recall_min": "٠", "state": ""}, HTTP_HX_REQUEST="true",
                         HTTP_HX_TARGET="queue").content.decode()
    assert 'data-testid="filter-error"' in partial and "Symptom recall ≥: Enter a number." in partial
    for number in ("٢", "²", "2\x00"):
        assert client.get(reverse("curation:curation"), {"page": number, "state": ""}).status_code == 200


def test_no_template_of_curation_or_releases_has_inline_script():
    """The Content-Security-Policy allows scripts from files only (script-src 'self'): no inline script, no inline
    event handler, no javascript: URL."""
    import re

    from django.conf import settings

    inline = re.compile(r"<script(?![^>]*\bsrc=)|\son[a-z]+\s*=|javascript:|hx-on", re.IGNORECASE)
    folders = [Path(settings.BASE_DIR) / "templates" / "review" / name for name in ("curation", "releases")]
    found = [f"{path.name}: {match.group(0)}" for folder in folders for path in sorted(folder.glob("*.html"))
             for match in inline.finditer(path.read_text(encoding="utf-8"))]
    assert found == []
