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
    assert refused.status_code == 409 and "Cannot approve note" in refused.json()["detail"]
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
