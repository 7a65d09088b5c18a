"""Release API: the export job in every release, domain errors as 400 / 409 through core.api, retry of a failed
export."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from medsyn_site.core.models import AuditRecord
from review.releases.models import ReleaseExport
from review.releases.services import do_create_release, release_export_run
from tests.review.releases.factories import approve


@pytest.fixture
def api(curator) -> APIClient:
    client = APIClient()
    client.force_authenticate(curator)
    return client


def test_a_release_shows_its_export_job(api, curator, curation_pool, settings, tmp_path):
    settings.RELEASES_DIR = tmp_path
    approve(curator, *curation_pool["synthetic"][:2])
    created = api.post("/api/review/releases/", {"name": "job", "licence": "cc-by-4.0"}, format="json")
    assert created.status_code == 201
    export = created.json()["export"]
    assert (export["status"], export["finished"], export["percent"], export["progress_total"]) == (
        "queued", False, 0, 2)
    release_export_run(created.json()["id"])
    export = api.get(f"/api/review/releases/{created.json()['id']}/").json()["export"]
    assert (export["status"], export["finished"], export["percent"], export["progress_done"]) == ("done", True, 100, 2)
    assert "SHA256SUMS" in {f["path"] for f in export["files"]} and export["stats"]["rows"] == 2
    assert api.get("/api/review/releases/").json()[0]["export"]["status"] == "done"


def test_a_release_that_cannot_be_made_is_a_400(api, curation_pool):
    nothing = api.post("/api/review/releases/", {"name": "empty"}, format="json")
    assert nothing.status_code == 400 and "No note can be released" in nothing.json()["detail"]
    unlicensed = api.post("/api/review/releases/", {"name": "mixed", "include_real": True}, format="json")
    assert unlicensed.status_code == 400 and "licence" in unlicensed.json()["detail"]
    assert api.post("/api/review/releases/", {"name": "x", "licence": "wtfpl"}, format="json").json().keys() == {
        "licence"}


def test_only_a_failed_export_is_retried(api, curator, curation_pool, settings, tmp_path):
    approve(curator, curation_pool["synthetic"][0])
    release = do_create_release(actor=curator, name="retry", filters={}, queue_export=False)
    url = f"/api/review/releases/{release.pk}/export/retry/"
    queued = api.post(url)
    assert queued.status_code == 409 and "only a failed or stalled export is retried" in queued.json()["detail"]
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    settings.RELEASES_DIR = blocked / "releases"
    with pytest.raises(OSError):
        release_export_run(release.pk)
    failed = ReleaseExport.objects.get(release=release)
    assert failed.status == "failed" and failed.finished and failed.error.startswith("NotADirectoryError")

    retried = api.post(url)
    assert retried.status_code == 202
    assert (retried.json()["status"], retried.json()["error"], retried.json()["finished_at"]) == ("queued", "", None)
    audit = AuditRecord.objects.get(action="retry_release_export")
    assert (audit.actor, audit.object_id, audit.from_state, audit.to_state) == (curator, str(failed.pk), "failed",
                                                                                  "queued")
    assert audit.extra["error"] == failed.error
    settings.RELEASES_DIR = tmp_path / "releases"
    release_export_run(release.pk)
    assert ReleaseExport.objects.get(release=release).status == "done"
    assert api.post(url).status_code == 409


def test_researchers_read_but_do_not_retry(make_user, curator, curation_pool):
    approve(curator, curation_pool["synthetic"][0])
    release = do_create_release(actor=curator, name="read-only", filters={}, queue_export=False)
    researcher = APIClient()
    researcher.force_authenticate(make_user("researcher"))
    assert researcher.get(f"/api/review/releases/{release.pk}/").status_code == 200
    assert researcher.post(f"/api/review/releases/{release.pk}/export/retry/").status_code == 403


def test_a_stalled_export_can_be_retried(api, curator, curation_pool):
    """An export whose worker or message was lost would otherwise stay queued for ever."""
    from datetime import timedelta

    from django.utils import timezone

    approve(curator, curation_pool["synthetic"][0])
    release = do_create_release(actor=curator, name="stalled", filters={}, queue_export=False)
    url = f"/api/review/releases/{release.pk}/export/retry/"
    assert api.post(url).status_code == 409  # queued a moment ago: alive
    ReleaseExport.objects.filter(release=release).update(
        updated_at=timezone.now() - ReleaseExport.STALLED_AFTER - timedelta(seconds=1))
    assert api.post(url).status_code == 202
    audit = AuditRecord.objects.get(action="retry_release_export")
    assert (audit.from_state, audit.to_state) == ("queued", "queued")

