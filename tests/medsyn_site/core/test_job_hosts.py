"""The workers that ran a chunked job's chunks (core.chunks.chunks_by_host), shown by `{% job_hosts job %}` on the
status of every job that runs in chunks (a generation job, a scan, an extraction, a utility evaluation: the last in
tests/review/utility/test_views.py)."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import translation

from medsyn_site.core.chunks import job_label
from medsyn_site.core.models import ChunkStatus, JobChunk
from review.curation.models import ScanJob

pytestmark = pytest.mark.django_db


def chunks_on_two_hosts(job) -> None:
    rows = [(ChunkStatus.DONE, "gpu-a@host-one boot1"), (ChunkStatus.DONE, "gpu-a@host-one boot1"),
            (ChunkStatus.RUNNING, "gpu-b@host-two boot2"), (ChunkStatus.QUEUED, "")]
    JobChunk.objects.bulk_create([
        JobChunk(job_model=job_label(job), job_id=job.pk, index=index, first=index * 10, end=index * 10 + 10,
                 status=status, worker=worker) for index, (status, worker) in enumerate(rows)])


def hosts_line(html: str, testid: str) -> str:
    start_at = html.index(f'data-testid="{testid}"')
    return html[start_at:html.index("</p>", start_at)]


def test_a_scan_shows_which_workers_ran_its_shards(client, make_user, db):
    client.force_login(make_user("curator"))
    scan = ScanJob.objects.create(kind=ScanJob.Kind.DUPLICATES, status="running")
    url = reverse("curation:scan_status", args=[scan.pk])
    assert 'data-testid="scan-hosts"' not in client.get(url, HTTP_HX_REQUEST="true").content.decode()
    chunks_on_two_hosts(scan)
    line = hosts_line(client.get(url, HTTP_HX_REQUEST="true").content.decode(), "scan-hosts")
    assert "gpu-a@host-one (2 chunks done, 0 running)" in line
    assert "gpu-b@host-two (0 chunks done, 1 running)" in line
    assert "boot1" not in line  # the boot id is the sweep's business, not the page's


def test_the_hosts_line_is_in_russian_for_a_russian_reader(client, make_user, db):
    client.force_login(make_user("curator"))
    scan = ScanJob.objects.create(kind=ScanJob.Kind.MEMORISATION, status="running")
    chunks_on_two_hosts(scan)
    with translation.override("en"):  # the request activates Russian in this thread; later tests read English
        html = client.get(reverse("curation:scan_status", args=[scan.pk]), HTTP_HX_REQUEST="true",
                          HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    line = hosts_line(html, "scan-hosts")
    assert "Воркеры" in line and "Workers" not in line and "gpu-a@host-one" in line


def test_chunks_a_command_ran_itself_are_named_by_its_machine(client, make_user, db):
    client.force_login(make_user("curator"))
    scan = ScanJob.objects.create(kind=ScanJob.Kind.DUPLICATES, status="running")
    JobChunk.objects.create(job_model=job_label(scan), job_id=scan.pk, index=0, first=0, end=10,
                            status=ChunkStatus.DONE, worker="inline curation-box:4242")
    line = hosts_line(client.get(reverse("curation:scan_status", args=[scan.pk]), HTTP_HX_REQUEST="true")
                      .content.decode(), "scan-hosts")
    assert "curation-box (run by a command, not a worker) (1 chunks done, 0 running)" in line and "4242" not in line
