"""Release pages: the export job's status and percent, htmx polling that stops once the job has finished, retry."""

from __future__ import annotations

import pytest
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


def test_the_release_form_refuses_keys_it_does_not_know(client, curator, curation_pool):
    from review.releases.models import Release

    approve(curator, *curation_pool["synthetic"])
    client.force_login(curator)
    form = {"name": "all", "licence": "mit", "code": "J06", "icd_code__regex": "^J06"}
    preview = client.post(reverse("releases:releases"), {**form, "preview": "1"}, HTTP_HX_REQUEST="true")
    assert "Fix the filter first" in preview.content.decode() and "icd_code__regex" in preview.content.decode()
    created = client.post(reverse("releases:releases"), form)
    assert created.status_code == 400 and "icd_code__regex" in created.content.decode()
    state = client.post(reverse("releases:releases"), {**form, "icd_code__regex": "", "state": "generated"})
    assert state.status_code == 400 and "Unknown filter key(s): icd_code__regex, state" in state.content.decode()
    assert not Release.objects.exists()
    known = client.post(reverse("releases:releases"), {"name": "j06", "licence": "mit", "description": "",
                                                       "real_data_licence": "", "code": "J06", "job": "",
                                                       "csrfmiddlewaretoken": "x"})
    assert known.status_code == 302 and Release.objects.get().note_count == 1  # every key the page sends is known


def test_the_release_form_refuses_unicode_digits_and_nul_bytes(client, curator, curation_pool):
    from review.releases.models import Release

    approve(curator, *curation_pool["synthetic"])
    client.force_login(curator)
    for field, value in (("job", "٢"), ("recall_min", "٠"), ("code", "J\x00"), ("description", "\x00")):
        response = client.post(reverse("releases:releases"), {"name": "r", "licence": "mit", field: value})
        assert response.status_code == 400, field
    assert not Release.objects.exists()


def test_the_diff_form_works_without_script(client, curator, curation_pool, make_user):
    approve(curator, *curation_pool["synthetic"][:2])
    first = do_create_release(actor=curator, name="diffed", filters={"code": "J06"}, queue_export=False)
    second = do_create_release(actor=curator, name="diffed", filters={}, queue_export=False)
    client.force_login(make_user("researcher"))
    page = client.get(reverse("releases:release_detail", args=[second.pk])).content.decode()
    assert "onsubmit" not in page
    assert f'action="{reverse("releases:release_compare", args=[second.pk])}"' in page
    assert f'<option value="{first.pk}">diffed v1</option>' in page
    compared = client.get(reverse("releases:release_compare", args=[second.pk]), {"other": str(first.pk)})
    assert compared.status_code == 302 and compared["Location"] == reverse("releases:release_diff",
                                                                          args=[first.pk, second.pk])
    for other in (str(second.pk), "٣", "²", "99999999999999999999", "\x00", ""):
        refused = client.get(reverse("releases:release_compare", args=[second.pk]), {"other": other})
        assert refused.status_code == 400 and 'data-testid="diff-error"' in refused.content.decode(), other


def test_the_release_page_says_how_csv_cells_are_neutralised(client, curator, curation_pool, settings, tmp_path):
    settings.RELEASES_DIR = tmp_path
    approve(curator, curation_pool["synthetic"][0])
    release = do_create_release(actor=curator, name="csv", filters={}, queue_export=False)
    release_export_run(release.pk)
    client.force_login(curator)
    page = client.get(reverse("releases:release_detail", args=[release.pk])).content.decode()
    assert "starts with an apostrophe (&#x27;)" in page or "starts with an apostrophe (')" in page


@pytest.mark.django_db(transaction=True)
def test_the_diff_form_in_the_browser(curator, curation_pool, live_server, page, live_login):
    from playwright.sync_api import expect

    approve(curator, *curation_pool["synthetic"][:2])
    first = do_create_release(actor=curator, name="browsed", filters={"code": "J06"}, queue_export=False)
    second = do_create_release(actor=curator, name="browsed", filters={}, queue_export=False)
    live_login(curator.username)
    page.goto(f"{live_server.url}{reverse('releases:release_detail', args=[second.pk])}")
    page.select_option("[data-testid=diff-form] select[name=other]", str(first.pk))
    page.click("[data-testid=diff-form] button[type=submit]")
    expect(page.locator("[data-testid=diff-summary]")).to_contain_text("1 added, 0 removed, 0 edited, 1 unchanged.")
    assert page.url == f"{live_server.url}{reverse('releases:release_diff', args=[first.pk, second.pk])}"
