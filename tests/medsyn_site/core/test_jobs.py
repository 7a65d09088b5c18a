"""Sending jobs to the broker (fast 503 and nothing left queued when it is down) and picking up the jobs of dead
workers, against the suite's real Redis; a broker that is down is a closed port on 127.0.0.1."""

from __future__ import annotations

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction

from generation.models import NoteImportJob
from generation.services import note_import_upload
from graph.models import ImportJob
from medsyn_site.core.errors import BrokerUnavailable
from medsyn_site.core.jobs import (
    REQUEUED,
    broker_require,
    job_send_on_commit,
    jobs_orphaned_requeue,
    worker_boot_key,
)
from medsyn_site.core.models import JobStatus
from medsyn_site.health import redis_client
from medsyn_site.stack import free_port
from review.curation.models import ScanJob
from review.curation.scans import do_start_scan


@pytest.fixture
def broker_down(settings) -> str:
    url = f"redis://127.0.0.1:{free_port()}/1"
    settings.CELERY_BROKER_URL = url
    return url


def test_broker_require_passes_with_the_suite_broker_and_fails_fast_on_a_closed_port(settings):
    broker_require()
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/1"
    with pytest.raises(BrokerUnavailable, match="broker"):
        broker_require()


@pytest.mark.django_db(transaction=True)
def test_a_scan_started_while_the_broker_is_down_leaves_no_queued_row_to_block_later_scans(broker_down, settings):
    with pytest.raises(BrokerUnavailable):
        do_start_scan(actor=None, kind=ScanJob.Kind.DUPLICATES)
    assert not ScanJob.objects.exists()  # rolled back with the action: nothing "queued" for ever
    scan = do_start_scan(actor=None, kind=ScanJob.Kind.DUPLICATES, queue=False)
    assert scan.status == JobStatus.QUEUED  # a later scan is not blocked by a leftover


@pytest.mark.django_db(transaction=True)
def test_an_upload_while_the_broker_is_down_stores_neither_a_job_nor_the_file(broker_down, make_user, settings,
                                                                             tmp_path):
    settings.MEDIA_ROOT = tmp_path
    upload = SimpleUploadedFile("notes.jsonl", b'{"idx": "1", "symptoms": "x", "code": "J06"}\n')
    with pytest.raises(BrokerUnavailable):
        note_import_upload(kind=NoteImportJob.Kind.RUMEDTOP3, split="train", upload=upload,
                           actor=make_user("admin"))
    assert not NoteImportJob.objects.exists()
    assert not any(tmp_path.rglob("*.jsonl"))


@pytest.mark.django_db(transaction=True)
def test_a_broker_lost_between_the_check_and_the_commit_fails_the_job_with_the_reason(settings):
    good = settings.CELERY_BROKER_URL
    with pytest.raises(BrokerUnavailable), transaction.atomic():
        scan = ScanJob.objects.create(kind=ScanJob.Kind.MEMORISATION)
        job_send_on_commit(scan)  # the broker answers now ...
        settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/1"  # ... and is gone at the commit
    settings.CELERY_BROKER_URL = good
    scan.refresh_from_db()
    assert scan.status == JobStatus.FAILED and "broker" in scan.error and scan.finished_at is not None


def _sweep(client) -> list:
    """Live workers of the suite sweep too (one sweep per heartbeat interval over all workers): wait for a turn."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if sent := jobs_orphaned_requeue(client):
            return sent
        time.sleep(0.3)
    return []


def test_running_jobs_of_dead_or_restarted_workers_are_sent_again_and_live_ones_are_left(db, settings):
    """In the test's transaction, so live workers of the suite neither see these rows nor run what is sent."""
    client = redis_client(settings.CELERY_BROKER_URL)
    client.set(worker_boot_key("alive@test"), "boot-now", ex=60)
    dead = ScanJob.objects.create(kind=ScanJob.Kind.DUPLICATES, status=JobStatus.RUNNING, worker="gone@test boot-1")
    restarted = ScanJob.objects.create(kind=ScanJob.Kind.MEMORISATION, status=JobStatus.RUNNING,
                                       worker="alive@test boot-before")
    alive = ImportJob.objects.create(original_name="x.jsonl", upload="x.jsonl", status=JobStatus.RUNNING,
                                     worker="alive@test boot-now")
    # a job run by a management command (no worker) is not the sweep's business
    local = NoteImportJob.objects.create(kind=NoteImportJob.Kind.RUMEDTOP3, original_name="x.jsonl",
                                         status=JobStatus.RUNNING, worker="")
    try:
        sent = _sweep(client)  # one sweep sees all four
    finally:
        client.delete(worker_boot_key("alive@test"))
    assert sorted(sent) == [("curation.ScanJob", dead.pk), ("curation.ScanJob", restarted.pk)]
    for job in (dead, restarted):
        job.refresh_from_db()
        assert (job.status, job.worker) == (JobStatus.QUEUED, REQUEUED)
    for job in (alive, local):
        job.refresh_from_db()
        assert job.status == JobStatus.RUNNING


def test_a_worker_records_itself_on_the_job_it_runs_and_a_command_does_not(db):
    scan = ScanJob.objects.create(kind=ScanJob.Kind.DUPLICATES)
    assert scan.mark_running()
    scan.refresh_from_db()
    assert scan.status == JobStatus.RUNNING and scan.worker == ""


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("url", "form", "model"), [
    ("graph:import_upload", {"kind": "generic"}, ImportJob),
    ("generation:note_import", {"kind": "rumedtop3", "split": "train"}, NoteImportJob)])
def test_an_upload_page_while_the_broker_is_down_answers_503_and_keeps_no_file(broker_down, client, make_user,
                                                                               settings, tmp_path, url, form, model):
    from django.urls import reverse

    settings.MEDIA_ROOT = tmp_path
    client.force_login(make_user("admin"))
    upload = SimpleUploadedFile("upload.jsonl", b'{"idx": "1", "symptoms": "x", "code": "J06"}\n')
    answer = client.post(reverse(url), {**form, "upload": upload})
    assert answer.status_code == 503 and "broker" in answer.content.decode().lower()
    assert not model.objects.exists() and not any(path.is_file() for path in tmp_path.rglob("*"))
