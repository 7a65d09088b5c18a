"""Shared storage (core.storage): MEDSYN_STORAGE_URL read as the settings read it, folders that follow their
setting, and folders published to and fetched from a real S3 endpoint (moto's server, tests/medsyn_site/core/
s3_server.py) and a plain folder alike: whole or not at all, every file checked by its SHA-256 on the way back."""

from __future__ import annotations

import hashlib
import runpy
import secrets
from pathlib import Path

import pytest

from medsyn_site.core.storage import (
    MANIFEST,
    StorageUnavailable,
    StoredFile,
    StoredFolderInvalid,
    adapters_storage,
    file_stream,
    folder_edit,
    folder_entries,
    folder_fetch,
    folder_fetch_addressed,
    folder_publish,
    folder_publish_addressed,
    folder_workspace,
    releases_storage,
    shared_storage_from_url,
    storage_check,
    storage_for,
    storage_where,
)
from medsyn_site.env import ConfigError
from medsyn_site.stack import free_port
from tests.medsyn_site.core.s3_server import S3Server, storages_use

FILES = {"a.txt": "первый файл\n", "sub/b.bin": "x" * 3_000_000, "sub/deeper/c.json": '{"ok": true}'}


def folder_make(root: Path, files: dict[str, str] = FILES) -> Path:
    for path, text in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(text, encoding="utf-8")
    return root


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- Configuration ------------------------------------------------------------------------------------------------

def test_unset_and_file_urls_are_folders_and_s3_urls_are_buckets():
    local = shared_storage_from_url("MEDSYN_STORAGE_URL", "")
    assert local.folder is None
    assert local.storages["releases"] == {"BACKEND": "medsyn_site.core.storage.FolderStorage",
                                          "OPTIONS": {"setting": "RELEASES_DIR"}}
    assert local.storages["adapters"]["OPTIONS"] == {"setting": "ADAPTERS_DIR"}
    nfs = shared_storage_from_url("MEDSYN_STORAGE_URL", "file:///srv/medsyn%20shared/")
    assert nfs.folder == Path("/srv/medsyn shared")
    assert nfs.storages["releases"]["OPTIONS"] == {"setting": "RELEASES_DIR", "root": "/srv/medsyn shared"}

    minio = shared_storage_from_url("MEDSYN_STORAGE_URL", "s3://medsyn/prod/", endpoint_url="http://minio:9000",
                                    region="eu-central-1")
    assert minio.folder is None
    releases = minio.storages["releases"]
    assert releases["BACKEND"] == "storages.backends.s3.S3Storage"
    assert {key: releases["OPTIONS"][key] for key in ("bucket_name", "location", "endpoint_url", "addressing_style",
                                                        "region_name")} == {
        "bucket_name": "medsyn", "location": "prod/releases", "endpoint_url": "http://minio:9000",
        "addressing_style": "path", "region_name": "eu-central-1"}
    assert minio.storages["adapters"]["OPTIONS"]["location"] == "prod/adapters"
    aws = shared_storage_from_url("MEDSYN_STORAGE_URL", "s3://medsyn")
    assert aws.storages["releases"]["OPTIONS"]["location"] == "releases"
    assert "endpoint_url" not in aws.storages["releases"]["OPTIONS"]  # AWS itself, virtual-hosted addressing


@pytest.mark.parametrize("url", ["file://server/share", "file:relative/path", "s3:///no-bucket", "s3://b/p?x=1",
                                 "s3://b/../p", "gs://bucket", "/srv/medsyn"])
def test_a_malformed_storage_url_names_the_variable(url):
    with pytest.raises(ConfigError, match="MEDSYN_STORAGE_URL"):
        shared_storage_from_url("MEDSYN_STORAGE_URL", url)


def _base_settings(monkeypatch, **env: str) -> dict:
    """medsyn_site.settings.base as a process started with env would read it (run again in a namespace of its own)."""
    for name in ("MEDSYN_STORAGE_URL", "MEDSYN_S3_ENDPOINT_URL", "MEDSYN_S3_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    from medsyn_site.settings import base

    return runpy.run_path(base.__file__)


def test_the_settings_read_the_storage_url(monkeypatch, tmp_path):
    local = _base_settings(monkeypatch)
    assert local["RELEASES_DIR"] == local["VAR_DIR"] / "releases"
    assert local["ADAPTERS_DIR"] == local["MODEL_CACHE_DIR"] / "adapters"
    assert local["STORAGES"]["releases"]["BACKEND"] == "medsyn_site.core.storage.FolderStorage"
    shared = tmp_path / "shared"
    nfs = _base_settings(monkeypatch, MEDSYN_STORAGE_URL=f"file://{shared}")
    assert (nfs["RELEASES_DIR"], nfs["ADAPTERS_DIR"]) == (shared / "releases", shared / "adapters")
    bucket = _base_settings(monkeypatch, MEDSYN_STORAGE_URL="s3://medsyn/site-a",
                            MEDSYN_S3_ENDPOINT_URL="http://127.0.0.1:9000/", MEDSYN_S3_REGION="eu-central-1")
    assert {alias: bucket["STORAGES"][alias]["OPTIONS"]["location"] for alias in ("releases", "adapters")} == {
        "releases": "site-a/releases", "adapters": "site-a/adapters"}
    assert bucket["STORAGES"]["adapters"]["OPTIONS"]["endpoint_url"] == "http://127.0.0.1:9000"
    assert bucket["STORAGES"]["staticfiles"] == local["STORAGES"]["staticfiles"]
    with pytest.raises(ConfigError, match="MEDSYN_S3_ENDPOINT_URL"):
        _base_settings(monkeypatch, MEDSYN_STORAGE_URL="s3://medsyn", MEDSYN_S3_ENDPOINT_URL="minio:9000")
    with pytest.raises(ConfigError, match="MEDSYN_STORAGE_URL"):
        _base_settings(monkeypatch, MEDSYN_STORAGE_URL="ftp://x")


def test_every_settings_module_keeps_the_shared_storages(settings, monkeypatch):
    """test and production redefine STORAGES for static files: uploads, releases and adapters stay (the suite runs on
    test)."""
    assert {"default", "staticfiles", "releases", "adapters"} <= set(settings.STORAGES)
    from medsyn_site.settings import base

    monkeypatch.setattr(base, "SECRET_KEY", "p" + secrets.token_urlsafe(60))  # what production demands of base
    monkeypatch.setattr(base, "ALLOWED_HOSTS", ["medsyn.example.org"])
    production = runpy.run_module("medsyn_site.settings.production")["STORAGES"]
    assert production["staticfiles"]["BACKEND"] == "whitenoise.storage.CompressedManifestStaticFilesStorage"
    assert {alias: production[alias] for alias in ("default", "releases", "adapters")} == {
        alias: settings.STORAGES[alias] for alias in ("default", "releases", "adapters")}


def test_a_shared_folder_that_is_not_mounted_is_unavailable_not_made(settings, tmp_path):
    """A file:///path whose file system is not mounted: nothing is written on this host's own disk instead."""
    mount = tmp_path / "nfs"
    settings.STORAGES = {**settings.STORAGES, **shared_storage_from_url("MEDSYN_STORAGE_URL", f"file://{mount}").storages}
    settings.RELEASES_DIR = mount / "releases"
    with pytest.raises(StorageUnavailable, match="not mounted"):
        storage_check(releases_storage())
    with pytest.raises(StorageUnavailable), folder_workspace(releases_storage()):
        pass
    assert not mount.exists()
    mount.mkdir()
    assert storage_check(releases_storage()) == str(mount / "releases")


def test_a_folder_storage_follows_its_setting(settings, tmp_path):
    settings.RELEASES_DIR = tmp_path / "one"
    assert releases_storage().location == str(tmp_path / "one")
    settings.RELEASES_DIR = tmp_path / "two"
    assert releases_storage().path("r-v1/README.md") == str(tmp_path / "two" / "r-v1" / "README.md")
    assert adapters_storage().location == str(settings.ADAPTERS_DIR)
    assert storage_check(releases_storage()) == str(tmp_path / "two") and (tmp_path / "two").is_dir()


# --- Publishing and fetching --------------------------------------------------------------------------------------

@pytest.fixture(params=["folder", "s3"])
def storage(request, settings, tmp_path):
    """The releases storage as a folder and as a bucket of the suite's S3 server."""
    settings.RELEASES_DIR = tmp_path / "releases"
    if request.param == "s3":
        s3_ = request.getfixturevalue("s3")
        storages_use(settings, s3_, s3_.bucket_create(), "releases")
    return releases_storage()


def test_a_published_folder_reads_back_byte_for_byte(storage, tmp_path):
    with folder_workspace(storage) as work:
        local = folder_make(work / "built")
        entries = folder_entries(local)
        folder_publish(storage, local, "r-v1", [entry.path for entry in entries])
    for entry in entries:
        with file_stream(storage, f"r-v1/{entry.path}") as stream:
            assert sha256(stream.read()) == entry.sha256
    folder_fetch(storage, "r-v1", entries, tmp_path / "copy")
    assert folder_entries(tmp_path / "copy") == entries
    with pytest.raises(FileNotFoundError):
        file_stream(storage, "r-v1/absent.txt")


def test_publishing_again_replaces_the_folder(storage, tmp_path):
    for text in ("first", "second"):
        with folder_workspace(storage) as work:
            local = folder_make(work / "built", {"a.txt": text})
            folder_publish(storage, local, "r-v1", ["a.txt"])
    with file_stream(storage, "r-v1/a.txt") as stream:
        assert stream.read() == b"second"


def test_an_edit_replaces_the_changed_files_only(storage, tmp_path):
    with folder_workspace(storage) as work:
        local = folder_make(work / "built")
        folder_publish(storage, local, "r-v1", list(FILES))
    with folder_edit(storage, "r-v1", list(FILES), changed=["a.txt"]) as folder:
        assert (folder / "sub/b.bin").read_text() == FILES["sub/b.bin"]
        (folder / "a.txt").write_text("edited", encoding="utf-8")
    with file_stream(storage, "r-v1/a.txt") as stream:
        assert stream.read() == b"edited"


def test_a_publish_that_fails_midway_raises_and_the_next_one_replaces_what_it_left(s3, s3_bucket, settings,
                                                                                     tmp_path):
    """The second file cannot be read: the error reaches the caller (who records nothing); the first file, already
    uploaded, stays until the next publish of the name replaces it."""
    storages_use(settings, s3, s3_bucket, "releases")
    storage = releases_storage()
    local = folder_make(tmp_path / "built")
    (local / "a.txt").write_text("attempt 1", encoding="utf-8")
    with pytest.raises(FileNotFoundError):
        folder_publish(storage, local, "r-v1", ["a.txt", "missing.txt", "sub/b.bin"])
    assert s3.keys(s3_bucket) == ["medsyn/releases/r-v1/a.txt"]
    (local / "a.txt").write_text("attempt 2", encoding="utf-8")
    folder_publish(storage, local, "r-v1", ["a.txt", "sub/b.bin"])
    with file_stream(storage, "r-v1/a.txt") as stream:
        assert stream.read() == b"attempt 2"


def test_an_edit_that_fails_midway_puts_the_previous_files_back(s3, s3_bucket, settings, tmp_path):
    storages_use(settings, s3, s3_bucket, "releases")
    storage = releases_storage()
    with folder_workspace(storage) as work:
        folder_publish(storage, folder_make(work / "built"), "r-v1", list(FILES))
    with pytest.raises(FileNotFoundError), folder_edit(storage, "r-v1", list(FILES),
                                                       changed=["a.txt", "sub/deeper/c.json"]) as folder:
        (folder / "a.txt").write_text("edited", encoding="utf-8")
        (folder / "sub/deeper/c.json").unlink()  # its upload fails after a.txt's
    with file_stream(storage, "r-v1/a.txt") as stream:
        assert stream.read().decode() == FILES["a.txt"]


def test_a_missing_bucket_and_a_stopped_server_are_unavailable(s3, settings, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # no retries with back-off against a server that is down
    storages_use(settings, s3, "medsyn-no-such-bucket", "releases")
    with pytest.raises(StorageUnavailable, match="the bucket does not exist"):
        storage_check(releases_storage())
    local = folder_make(tmp_path / "built")
    with pytest.raises(StorageUnavailable, match="NoSuchBucket"):
        folder_publish(releases_storage(), local, "r-v1", ["a.txt"])

    down = S3Server(port=free_port())  # nothing listens there
    storages_use(settings, down, "medsyn-anything", "releases")
    with pytest.raises(StorageUnavailable, match="Could not connect"):
        storage_check(releases_storage())
    bucket = s3.bucket_create()
    storages_use(settings, s3, bucket, "releases")
    assert storage_check(releases_storage()) == f"s3://{bucket}/medsyn/releases"
    assert storage_where(releases_storage(), "r-v1/README.md") == f"s3://{bucket}/medsyn/releases/r-v1/README.md"


# --- Folders named by their contents ------------------------------------------------------------------------------

def test_an_addressed_folder_is_named_by_its_contents_and_checked_when_fetched(s3, s3_bucket, settings, tmp_path):
    storages_use(settings, s3, s3_bucket, "adapters")
    storage = adapters_storage()
    local = folder_make(tmp_path / "adapter")
    key = folder_publish_addressed(storage, local, "ft7")
    assert key.startswith("ft7-") and len(key) == len("ft7-") + 16
    assert folder_publish_addressed(storage, local, "ft7") == key  # same files, same name
    assert s3.keys(s3_bucket) == sorted(f"medsyn/adapters/{key}/{path}" for path in [*FILES, MANIFEST])

    folder_fetch_addressed(storage, key, tmp_path / "cache" / key)
    fetched = folder_entries(tmp_path / "cache" / key)
    assert [entry for entry in fetched if entry.path != MANIFEST] == folder_entries(local)
    folder_fetch_addressed(storage, key, tmp_path / "cache" / key)  # already there (another process): kept

    s3.client().put_object(Bucket=s3_bucket, Key=f"medsyn/adapters/{key}/a.txt", Body=b"tampered")
    with pytest.raises(StoredFolderInvalid, match="a.txt"):
        folder_fetch_addressed(storage, key, tmp_path / "other" / key)
    assert not (tmp_path / "other" / key).exists() and list((tmp_path / "other").iterdir()) == []
    s3.client().put_object(Bucket=s3_bucket, Key=f"medsyn/adapters/{key}/{MANIFEST}", Body=b'{"files": []}')
    with pytest.raises(StoredFolderInvalid, match="not the one it was published with"):
        folder_fetch_addressed(storage, key, tmp_path / "other" / key)
    with pytest.raises(FileNotFoundError):
        folder_fetch_addressed(storage, "ft8-0123456789abcdef", tmp_path / "other" / "ft8")
    with pytest.raises(StoredFolderInvalid):
        folder_fetch_addressed(storage, "../escape", tmp_path / "other" / "x")


def test_a_fetch_refuses_paths_outside_the_folder(settings, tmp_path):
    settings.RELEASES_DIR = tmp_path / "releases"
    with pytest.raises(StoredFolderInvalid):
        folder_fetch(releases_storage(), "r-v1", [StoredFile(path="../../etc/passwd", bytes=1, sha256="0" * 64)],
                     tmp_path / "copy")
    assert storage_for("releases") is releases_storage()
