"""Releases in a bucket (MEDSYN_STORAGE_URL=s3://...): the export is built on local disk and published to a real
S3 endpoint (moto's server, tests/medsyn_site/core/s3_server.py); every file downloads through the pages and the
API with the size and SHA-256 the export lists; an export whose upload fails is failed, serves nothing and is done
by a retry once the storage is back; a refreshed dataset card is rewritten in the bucket."""

from __future__ import annotations

import hashlib

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from medsyn_site.core.sections import release_card_sections
from medsyn_site.core.storage import StorageUnavailable
from review.releases.export import folder_verify
from review.releases.models import ReleaseExport
from review.releases.services import (
    do_create_release,
    do_retry_release_export,
    release_card_refresh,
    release_export_run,
)
from tests.medsyn_site.core.s3_server import storages_use
from tests.review.releases.factories import approve

EXPORTED = {"data/train.parquet", "jsonl/train.jsonl", "csv/train.csv", "README.md", "SHA256SUMS"}


def _body(response) -> bytes:
    return b"".join(response.streaming_content)


def _downloaded(client, release, *, api: bool) -> dict[str, bytes]:
    """Every listed file of the export, fetched as a user would, checked against its listed size and SHA-256."""
    files = {}
    for entry in release.export.files:
        url = (f"/api/review/releases/{release.pk}/files/{entry['path']}" if api
               else reverse("releases:release_download", args=[release.pk, entry["path"]]))
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        assert int(response["Content-Length"]) == entry["bytes"]
        assert "attachment" in response["Content-Disposition"]
        body = _body(response)
        assert (len(body), hashlib.sha256(body).hexdigest()) == (entry["bytes"], entry["sha256"]), entry["path"]
        files[entry["path"]] = body
    return files


def test_a_release_exported_to_a_bucket_downloads_file_for_file(client, curator, curation_pool, s3, s3_bucket,
                                                               settings, tmp_path):
    settings.RELEASES_DIR = tmp_path / "releases"  # must stay empty: the bucket holds the release
    storages_use(settings, s3, s3_bucket, "releases")
    approve(curator, *curation_pool["synthetic"][:4])
    release = do_create_release(actor=curator, name="in-bucket", filters={}, queue_export=False)
    release_export_run(release.pk)
    release.export.refresh_from_db()
    assert release.export.status == "done", release.export.error
    assert {entry["path"] for entry in release.export.files} == EXPORTED and release.export.folder == "in-bucket-v1"
    assert s3.keys(s3_bucket) == sorted(f"medsyn/releases/in-bucket-v1/{path}" for path in EXPORTED)
    assert not (tmp_path / "releases").exists() or not any((tmp_path / "releases").iterdir())
    assert not list((settings.VAR_DIR / "tmp").glob("storage-*"))  # the local build folder is gone

    client.force_login(curator)
    pages = _downloaded(client, release, api=False)
    api = APIClient()
    api.force_authenticate(curator)
    assert _downloaded(api, release, api=True) == pages
    # The downloaded folder is the release: SHA256SUMS matches every file.
    folder = tmp_path / "downloaded"
    for path, body in pages.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(body)
    assert folder_verify(folder) == []
    assert client.get(reverse("releases:release_download", args=[release.pk, "../../etc/passwd"])).status_code == 404


def test_an_export_whose_upload_fails_serves_nothing_and_a_retry_publishes_it(client, curator, curation_pool, s3,
                                                                            settings, tmp_path, monkeypatch):
    """First the bucket does not exist, then the storage server is down: each time the export fails cleanly
    (nothing listed, nothing served); once the storage is back a retry publishes it."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # no retries with back-off while the server is down
    settings.RELEASES_DIR = tmp_path / "releases"
    bucket = "medsyn-created-later"
    storages_use(settings, s3, bucket, "releases")
    approve(curator, *curation_pool["synthetic"][:2])
    release = do_create_release(actor=curator, name="flaky", filters={}, queue_export=False)
    client.force_login(curator)
    download = reverse("releases:release_download", args=[release.pk, "README.md"])

    with pytest.raises(StorageUnavailable, match="NoSuchBucket"):
        release_export_run(release.pk)
    export = ReleaseExport.objects.get(release=release)
    assert export.status == "failed" and export.error.startswith("StorageUnavailable: could not store s3://")
    assert (export.files, export.folder) == ([], "") and client.get(download).status_code == 404

    s3.bucket_create(bucket)
    do_retry_release_export(actor=curator, release=release)
    s3.stop()  # the storage goes down
    try:
        with pytest.raises(StorageUnavailable, match="Could not connect"):
            release_export_run(release.pk)
    finally:
        s3.start()  # and comes back, with its buckets
    export.refresh_from_db()
    assert export.status == "failed" and client.get(download).status_code == 404
    assert s3.keys(bucket) == []

    do_retry_release_export(actor=curator, release=release)
    release_export_run(release.pk)
    release.export.refresh_from_db()
    assert release.export.status == "done" and release.export.error == ""
    assert s3.keys(bucket) == sorted(f"medsyn/releases/flaky-v1/{path}" for path in EXPORTED)
    assert set(_downloaded(client, release, api=False)) == EXPORTED


def test_a_refreshed_card_is_rewritten_in_the_bucket(client, curator, curation_pool, s3, s3_bucket, settings,
                                                     monkeypatch):
    storages_use(settings, s3, s3_bucket, "releases")
    approve(curator, *curation_pool["synthetic"][:2])
    release = do_create_release(actor=curator, name="refreshed", filters={}, queue_export=False)
    release_export_run(release.pk)
    release.export.refresh_from_db()
    before = {entry["path"]: entry["sha256"] for entry in release.export.files}

    monkeypatch.setattr(release_card_sections, "_providers", [lambda release: "## Learnt later\n\nA new section."])
    assert release_card_refresh(release)
    release.export.refresh_from_db()
    after = {entry["path"]: entry["sha256"] for entry in release.export.files}
    assert {path for path in after if after[path] != before[path]} == {"README.md", "SHA256SUMS"}
    client.force_login(curator)
    files = _downloaded(client, release, api=False)  # the bucket holds what the export now lists
    assert "## Learnt later" in files["README.md"].decode()
