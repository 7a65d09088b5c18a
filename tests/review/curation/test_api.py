"""Curation API: a note's curation in every response, and domain errors mapped once by core.api (a state that
does not allow the action 409, bad input 400), never by hand in the views."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from review.curation.models import ScanJob


@pytest.fixture
def api(make_user) -> APIClient:
    client = APIClient()
    client.force_authenticate(make_user("curator"))
    return client


def test_a_note_never_curated_reads_as_generated_and_unchecked(api, curation_pool):
    note = curation_pool["synthetic"][0]
    listed = api.get("/api/review/curation/notes/", {"code": note.icd_code}).json()["results"]
    assert [row["id"] for row in listed] == [note.pk]
    curation = listed[0]["curation"]
    assert (curation["state"], curation["flagged"], curation["memorisation_checked_version"],
            curation["duplicates_checked_version"]) == ("generated", False, None, None)
    submitted = api.post(f"/api/review/curation/notes/{note.pk}/actions/", {"action": "submit"}, format="json")
    assert submitted.status_code == 200 and submitted.json()["curation"]["state"] == "pending_review"


def test_errors_are_409_for_a_state_and_400_for_input(api, curation_pool):
    note = curation_pool["synthetic"][0]
    refused = api.post(f"/api/review/curation/notes/{note.pk}/actions/", {"action": "approve"}, format="json")
    assert refused.status_code == 409 and "“Approve” does not apply to note" in refused.json()["detail"]
    assert "submitted for review first (key S)" in refused.json()["detail"]  # a generated note: says what to do
    not_flagged = api.post(f"/api/review/curation/notes/{note.pk}/actions/", {"action": "override", "reason": "ok"},
                           format="json")
    assert not_flagged.status_code == 409
    api.post(f"/api/review/curation/notes/{note.pk}/actions/", {"action": "submit"}, format="json")
    empty = api.post(f"/api/review/curation/notes/{note.pk}/actions/", {"action": "edit", "text": "  "},
                     format="json")
    assert empty.status_code == 400 and "empty" in empty.json()["detail"]
    unknown = api.post(f"/api/review/curation/notes/{note.pk}/actions/", {"action": "publish"}, format="json")
    assert unknown.status_code == 400 and "action" in unknown.json()


def test_scans_start_once_and_an_unknown_kind_is_a_400(api, db):
    started = api.post("/api/review/curation/scans/memorisation/")
    assert started.status_code == 202
    body = started.json()
    assert (body["kind"], body["status"], body["progress_done"], body["percent"]) == ("memorisation", "queued", 0, 0)
    assert api.post("/api/review/curation/scans/memorisation/").json()["id"] == body["id"]
    assert api.get(f"/api/review/curation/scans/{body['id']}/status/").json()["status"] == "queued"
    unknown = api.post("/api/review/curation/scans/everything/")
    assert unknown.status_code == 400 and "Unknown scan 'everything'" in unknown.json()["detail"]
    assert ScanJob.objects.count() == 1


def test_curation_responses_match_the_openapi_schema(api, curation_pool):
    """Every documented response of the curation API is what it returns: fields, types and nullables."""
    from review.curation.scans import scan_run
    from tests.review.curation.openapi_check import api_schema, response_check

    schema = api_schema(api)
    note = curation_pool["synthetic"][0]
    response_check(schema, "/api/review/curation/notes/", "get", api.get("/api/review/curation/notes/"))
    acted = api.post(f"/api/review/curation/notes/{note.pk}/actions/", {"action": "submit"}, format="json")
    response_check(schema, "/api/review/curation/notes/{id}/actions/", "post", acted)
    bulk = {"action": "submit", "filters": {"code": "I20"}}
    response_check(schema, "/api/review/curation/bulk/", "post",
                   api.post("/api/review/curation/bulk/", bulk, format="json"))
    response_check(schema, "/api/review/curation/bulk/", "post",
                   api.post("/api/review/curation/bulk/", {**bulk, "expected": 1}, format="json"))
    started = api.post("/api/review/curation/scans/duplicates/")
    response_check(schema, "/api/review/curation/scans/{kind}/", "post", started)  # 202, null timestamps
    scan_run(started.json()["id"])
    response_check(schema, "/api/review/curation/scans/{id}/status/", "get",
                   api.get(f"/api/review/curation/scans/{started.json()['id']}/status/"))
    listed = api.get("/api/review/curation/notes/", {"code": note.icd_code})  # scanned: checked versions set
    assert listed.json()["results"][0]["curation"]["duplicates_checked_version"] == note.version
    response_check(schema, "/api/review/curation/notes/", "get", listed)


def test_a_bulk_action_refuses_filter_keys_it_does_not_know(api, curation_pool):
    """An ignored key would leave the filter empty: the action would change every note."""
    from review.curation.models import NoteCuration

    for filters in ({"icd_code__regex": "^J06", "foo": "x"}, {"code": "J06", "Code": "J06"}):
        for expected in ({}, {"expected": 6}):
            refused = api.post("/api/review/curation/bulk/", {"action": "submit", "filters": filters, **expected},
                               format="json")
            assert refused.status_code == 400, refused.json()
            message = refused.json()["filters"]["__all__"][0]["message"]
            assert all(key in message for key in filters if key not in ("code",)), message
    assert not NoteCuration.objects.exists()
    listed = {"icd_code__regex": "x"}  # the queue's list reads its query string as the page does
    assert api.get("/api/review/curation/notes/", listed).json()["count"] == 6


@pytest.mark.parametrize(("key", "value"), [
    ("job", "٣"), ("job", "²"), ("job", "１"), ("recall_min", "٠"), ("recall_max", "١"),
    ("detectability_min", "٠.5"), ("code", "J0\x006"), ("model", "gpt\x00"), ("state", "\x00"),
])
def test_nul_bytes_and_unicode_digits_in_filters_are_a_400(api, curation_pool, key, value):
    from review.curation.models import NoteCuration

    listed = api.get("/api/review/curation/notes/", {key: value})
    assert listed.status_code == 400 and key in listed.json()
    for expected in ({}, {"expected": 6}):
        bulk = api.post("/api/review/curation/bulk/", {"action": "submit", "filters": {key: value}, **expected},
                        format="json")
        assert bulk.status_code == 400 and key in bulk.json()["filters"]
    assert not NoteCuration.objects.exists()


def test_a_filter_value_that_is_not_a_single_value_is_a_400(api, curation_pool):
    for value in (["J06"], {"startswith": "J"}):
        bulk = api.post("/api/review/curation/bulk/", {"action": "submit", "filters": {"code": value}}, format="json")
        assert bulk.status_code == 400 and "code" in bulk.json()["filters"]


@pytest.mark.parametrize("number", ["٢", "²", "1\x00", "x"])
def test_a_page_not_in_ascii_digits_is_a_400(api, curation_pool, number):
    response = api.get("/api/review/curation/notes/", {"page": number})
    assert response.status_code == 400 and "page" in response.json()
    assert api.get("/api/review/curation/notes/", {"page": "1"}).status_code == 200
    assert api.get("/api/review/curation/notes/", {"page": "last"}).status_code == 200


def test_a_scan_started_while_the_broker_is_down_is_a_503_and_a_later_scan_starts(api, db, settings):
    """Item 7 of the hardening issue: once a 500 after ~20 s and a "queued" scan that blocked every later scan."""
    from medsyn_site.stack import free_port

    good = settings.CELERY_BROKER_URL
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/1"
    answer = api.post("/api/review/curation/scans/memorisation/")
    assert answer.status_code == 503 and "broker" in answer.json()["detail"].lower()
    assert not ScanJob.objects.exists()
    settings.CELERY_BROKER_URL = good
    assert api.post("/api/review/curation/scans/memorisation/").status_code in (200, 201, 202)
