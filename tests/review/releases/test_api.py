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



def test_release_responses_match_the_openapi_schema(api, curator, curation_pool, settings, tmp_path):
    """The preview (200) and the release (201) are two documented shapes; nullable fields are documented so."""
    from tests.review.curation.openapi_check import api_schema, response_check

    settings.RELEASES_DIR = tmp_path
    schema = api_schema(api)
    approve(curator, *curation_pool["synthetic"][:2])
    approve(curator, curation_pool["synthetic"][2], checked=False)  # held back: the preview says why
    preview = api.post("/api/review/releases/", {"name": "doc", "preview": True}, format="json")
    assert preview.status_code == 200 and preview.json()["held_back"]
    response_check(schema, "/api/review/releases/", "post", preview)
    created = api.post("/api/review/releases/", {"name": "doc"}, format="json")
    response_check(schema, "/api/review/releases/", "post", created)  # 201, export queued: null timestamps
    pk = created.json()["id"]
    response_check(schema, "/api/review/releases/{id}/", "get", api.get(f"/api/review/releases/{pk}/"))
    release_export_run(pk)
    response_check(schema, "/api/review/releases/", "get", api.get("/api/review/releases/"))
    response_check(schema, "/api/review/releases/{id}/", "get", api.get(f"/api/review/releases/{pk}/"))
    ReleaseExport.objects.filter(release_id=pk).update(status="failed")
    response_check(schema, "/api/review/releases/{id}/export/retry/", "post",
                   api.post(f"/api/review/releases/{pk}/export/retry/"))
    response_check(schema, "/api/review/releases/{id}/diff/{other}/", "get",
                   api.get(f"/api/review/releases/{pk}/diff/{pk}/"))


@pytest.mark.parametrize("filters", [{"icd_code__regex": "^J", "foo": 1}, {"state": "generated"},
                                     {"code": "J06", "codes": ["J06"]}])
def test_a_release_refuses_filter_keys_it_does_not_know(api, curator, curation_pool, filters):
    """An ignored key would release every approved note instead of the ones the filter names."""
    from review.releases.models import Release

    approve(curator, *curation_pool["synthetic"])
    for preview in (True, False):
        refused = api.post("/api/review/releases/", {"name": "all", "preview": preview, "filters": filters},
                           format="json")
        assert refused.status_code == 400, refused.json()
        message = refused.json()["filters"]["__all__"][0]["message"]
        assert all(key in message for key in filters if key != "code"), message
    assert not Release.objects.exists()


@pytest.mark.parametrize(("key", "value"), [("job", "٣"), ("job", "²"), ("recall_min", "٠"), ("code", "J\x00"),
                                            ("model", "\x00"), ("code", ["J06"])])
def test_release_filters_refuse_nul_bytes_unicode_digits_and_lists(api, curator, curation_pool, key, value):
    from review.releases.models import Release

    approve(curator, *curation_pool["synthetic"])
    for preview in (True, False):
        refused = api.post("/api/review/releases/", {"name": "r", "preview": preview, "filters": {key: value}},
                           format="json")
        assert refused.status_code == 400 and key in refused.json()["filters"], refused.json()
    assert not Release.objects.exists()


def test_a_release_asked_for_while_the_broker_is_down_is_a_503_and_leaves_nothing(api, curator, curation_pool,
                                                                                   settings):
    """Item 7 of the hardening issue: once a 500 after ~20 s with a release whose export stayed "queued" for ever."""
    from medsyn_site.stack import free_port
    from review.releases.models import Release

    approve(curator, *curation_pool["synthetic"][:2])
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/1"
    answer = api.post("/api/review/releases/", {"name": "down", "licence": "cc-by-4.0"}, format="json")
    assert answer.status_code == 503 and "broker" in answer.json()["detail"].lower()
    assert not Release.objects.exists() and not ReleaseExport.objects.exists()
