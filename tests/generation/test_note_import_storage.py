"""Uploaded notes files in the shared storage (MEDSYN_STORAGE_URL=s3://...: the "default" storage is the bucket), so
the default worker that imports a file need not run on the web host that stored it (docs/deploy.md)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from generation.models import Note, NoteImportJob
from generation.tasks import run_note_import
from medsyn_site.core.storage import shared_storage_from_url
from tests.medsyn_site.core.s3_server import storages_use

from .factories import rumedtop3_lines

pytestmark = pytest.mark.django_db


def _upload(client, data: bytes, name: str = "visits.jsonl"):
    return client.post(reverse("generation:note_import"), {"kind": "rumedtop3", "split": "train",
                                                           "upload": SimpleUploadedFile(name, data)})


def test_an_upload_goes_to_the_bucket_and_a_worker_imports_it_from_there(client, make_user, s3, s3_bucket, settings,
                                                                       monkeypatch, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "not-used"  # nothing may land on this host's disk
    storages_use(settings, s3, s3_bucket, "default")
    monkeypatch.setattr(NoteImportJob, "task_send", lambda job: None)  # the worker runs it below
    client.force_login(make_user("admin"))
    assert _upload(client, rumedtop3_lines(3)).status_code == 302
    job = NoteImportJob.objects.get()
    assert s3.keys(s3_bucket) == [f"medsyn/uploads/{job.upload.name}"]
    assert job.upload.name.startswith("note_imports/") and not (tmp_path / "not-used").exists()
    run_note_import(job.pk)
    job.refresh_from_db()
    assert (job.status, job.created) == ("done", 3), job.error
    assert Note.objects.filter(source_dataset="RuMedTop3").count() == 3
    assert s3.keys(s3_bucket) == [f"medsyn/uploads/{job.upload.name}"]  # kept: the provenance of what it imported


def test_a_failed_import_deletes_its_upload_from_the_bucket(client, make_user, s3, s3_bucket, settings, monkeypatch):
    storages_use(settings, s3, s3_bucket, "default")
    monkeypatch.setattr(NoteImportJob, "task_send", lambda job: None)
    client.force_login(make_user("admin"))
    _upload(client, b'{"idx": "r1", "symptoms": "\xd0", "code": "J06"}\n')
    job = NoteImportJob.objects.get()
    run_note_import(job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and "UTF-8" in job.error and not job.upload
    assert s3.keys(s3_bucket) == [] and not Note.objects.exists()


@pytest.mark.django_db(transaction=True)  # the request's own transactions, as in production
def test_an_upload_while_the_bucket_is_unreachable_is_a_503_and_keeps_no_job(client, make_user, s3, settings):
    storages_use(settings, s3, "medsyn-no-such-bucket", "default")
    client.force_login(make_user("admin"))
    response = _upload(client, rumedtop3_lines(2))
    assert response.status_code == 503 and not NoteImportJob.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_uploads_in_a_shared_folder_and_none_on_this_hosts_disk_when_it_is_not_mounted(client, make_user, settings,
                                                                                         monkeypatch, tmp_path):
    mount = tmp_path / "nfs"
    settings.STORAGES = {**settings.STORAGES, **shared_storage_from_url("MEDSYN_STORAGE_URL", f"file://{mount}").storages}
    settings.MEDIA_ROOT = mount / "uploads"  # what the settings make of a file:// URL
    monkeypatch.setattr(NoteImportJob, "task_send", lambda job: None)
    client.force_login(make_user("admin"))
    assert _upload(client, rumedtop3_lines(2)).status_code == 503  # not mounted
    assert not mount.exists() and not NoteImportJob.objects.exists()
    mount.mkdir()
    assert _upload(client, rumedtop3_lines(2)).status_code == 302
    job = NoteImportJob.objects.get()
    assert (mount / "uploads" / job.upload.name).is_file()
    run_note_import(job.pk)
    job.refresh_from_db()
    assert (job.status, job.created) == ("done", 2), job.error
