"""Release pages: the export job's status and percent, htmx polling that stops once the job has finished, retry."""

from __future__ import annotations

from django.urls import reverse

from review.releases.models import ReleaseExport
from review.releases.services import do_create_release, release_export_run
from tests.review.releases.factories import approve


def test_the_export_partial_polls_until_the_job_has_finished(client, curator, curation_pool, settings, tmp_path):
    settings.RELEASES_DIR = tmp_path
    approve(curator, *curation_pool["synthetic"][:2])
    release = do_create_release(actor=curator, name="polled", filters={}, queue_export=False)
    client.force_login(curator)
    url = reverse("releases:release_detail", args=[release.pk])
    page = client.get(url).content.decode()
    assert 'hx-trigger="every 1s"' in page and "0 of 2 notes" in page
    ReleaseExport.objects.filter(release=release).update(status="running", progress_done=1)
    running = client.get(url, HTTP_HX_REQUEST="true")
    assert running.status_code == 200 and 'aria-valuenow="50"' in running.content.decode()
    assert "Running (50%)" in client.get(reverse("releases:releases")).content.decode()
    release_export_run(release.pk)
    done = client.get(url, HTTP_HX_REQUEST="true")
    assert done.status_code == 286  # htmx stops polling
    assert "2 of 2 notes" in done.content.decode() and 'data-file="jsonl/train.jsonl"' in done.content.decode()
    assert 'hx-trigger="every 1s"' not in client.get(url).content.decode()
    assert client.get(reverse("releases:release_download", args=[release.pk, "README.md"])).status_code == 200


def test_a_failed_export_is_retried_from_its_page(client, curator, curation_pool, settings, tmp_path):
    approve(curator, curation_pool["synthetic"][0])
    release = do_create_release(actor=curator, name="retried", filters={}, queue_export=False)
    client.force_login(curator)
    retry = reverse("releases:release_retry", args=[release.pk])
    refused = client.post(retry, follow=True).content.decode()
    assert "only a failed or stalled export is retried" in refused
    ReleaseExport.objects.filter(release=release).update(status="failed", error="OSError: disk full")
    page = client.get(reverse("releases:release_detail", args=[release.pk])).content.decode()
    assert "OSError: disk full" in page and 'data-testid="export-retry"' in page
    assert client.get(reverse("releases:release_download", args=[release.pk, "README.md"])).status_code == 404
    queued = client.post(retry, follow=True).content.decode()
    assert "is queued again" in queued and ReleaseExport.objects.get(release=release).status == "queued"
