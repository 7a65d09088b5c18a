"""The admin upload page and its Celery job (run in-process here; the task body is the unit under test)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import reverse

from graph import tasks
from graph.models import ImportJob
from medsyn_site.core.models import JobStatus

from .conftest import DRUG_ROWS

pytestmark = pytest.mark.django_db


def _jsonl(rows) -> bytes:
    import json

    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows).encode()


@pytest.fixture
def admin_client(request, client, make_user, small_graph, monkeypatch, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    # The task body runs in-process when the job is sent (the broker check still asks the suite's Redis).
    monkeypatch.setattr(ImportJob, "task_send", lambda job: tasks.graph_import_job_run(job.pk))
    if not request.node.get_closest_marker("django_db").kwargs.get("transaction"):
        # The test's own transaction never commits: run what the upload queues on commit right away.
        monkeypatch.setattr(transaction, "on_commit", lambda callback, *args, **kwargs: callback())
    client.force_login(make_user("admin"))
    return client


def test_upload_imports_and_job_page_stops_polling(admin_client, graph_store):
    upload = SimpleUploadedFile("drugs.jsonl", _jsonl(DRUG_ROWS))
    response = admin_client.post(reverse("graph:import_upload"), {"kind": "generic", "upload": upload})
    job = ImportJob.objects.get()
    assert response.status_code == 302 and job.status == JobStatus.DONE and job.version is not None
    assert graph_store.run("MATCH (d:Drug) RETURN d.key AS k") == [{"k": "amoxicillin"}]
    assert job.changed and job.finished_at is not None
    poll = admin_client.get(reverse("graph:import_job", kwargs={"pk": job.pk}), HTTP_HX_REQUEST="true")
    assert poll.status_code == 286 and b"Done" in poll.content
    assert f"Graph version v{job.version.pk}." in poll.content.decode()


def test_uploading_the_same_file_again_says_unchanged(admin_client, graph_store):
    for name in ("drugs.jsonl", "drugs-again.jsonl"):
        admin_client.post(reverse("graph:import_upload"),
                          {"kind": "generic", "upload": SimpleUploadedFile(name, _jsonl(DRUG_ROWS))})
    again, first = ImportJob.objects.all()
    assert (again.status, again.changed, again.version) == (JobStatus.DONE, False, first.version)
    assert again.unchanged and not first.unchanged
    page = admin_client.get(reverse("graph:import_job", kwargs={"pk": again.pk})).content.decode()
    assert "unchanged: already imported" in page and 'data-testid="job-status">Done<' in page
    assert f"already in graph version v{first.version.pk}" in page
    listing = admin_client.get(reverse("graph:import_upload")).content.decode()
    assert listing.count("unchanged: already imported") == 1


@pytest.mark.django_db(transaction=True)
def test_job_records_progress_in_nodes_and_edges_written(admin_client):
    """The job row ends with done of total in nodes and edges (3 and 3 here), as ProgressRecorder wrote them."""
    admin_client.post(reverse("graph:import_upload"),
                      {"kind": "generic", "upload": SimpleUploadedFile("drugs.jsonl", _jsonl(DRUG_ROWS))})
    job = ImportJob.objects.get()
    assert (job.status, job.progress_done, job.progress_total, job.percent) == (JobStatus.DONE, 6, 6, 100)


def test_a_running_job_keeps_polling_and_says_how_far_it_is(admin_client):
    job = ImportJob.objects.create(kind="generic", original_name="drugs.jsonl", status=JobStatus.RUNNING,
                                   upload=SimpleUploadedFile("drugs.jsonl", _jsonl(DRUG_ROWS)))
    url = reverse("graph:import_job", kwargs={"pk": job.pk})
    reading = admin_client.get(url, HTTP_HX_REQUEST="true")
    assert reading.status_code == 200
    assert 'data-testid="job-status">Running<' in reading.content.decode()
    assert "reading and checking the file" in reading.content.decode()
    ImportJob.objects.filter(pk=job.pk).update(progress_done=3, progress_total=6)
    writing = admin_client.get(url, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-testid="job-status">Running<' in writing and 'aria-valuenow="50"' in writing
    assert "reading and checking the file" not in writing and "3 of 6 nodes and edges written" in writing


def test_bad_upload_lists_problems_and_imports_nothing(admin_client, graph_store):
    upload = SimpleUploadedFile("bad.jsonl", _jsonl([DRUG_ROWS[0], "{oops", {"kind": "node", "label": "X"}]))
    admin_client.post(reverse("graph:import_upload"), {"kind": "generic", "upload": upload})
    job = ImportJob.objects.get()
    assert job.status == JobStatus.FAILED and not job.changed
    assert [e["line"] for e in job.errors] == [2, 3]
    assert job.error.startswith("bad.jsonl: 2 problem(s), nothing imported: line 2: not valid JSON")
    assert graph_store.run("MATCH (d:PharmGroup) RETURN count(d) AS c") == [{"c": 0}]
    page = admin_client.get(reverse("graph:import_job", kwargs={"pk": job.pk})).content.decode()
    assert "line 2" in page


def test_a_failing_import_shows_its_error_and_fails_the_job(admin_client, monkeypatch):
    from graph import services

    def graph_down(**kwargs):
        raise RuntimeError("graph went away")

    monkeypatch.setattr(services, "graph_import", graph_down)
    job = ImportJob.objects.create(kind="generic", original_name="drugs.jsonl",
                                   upload=SimpleUploadedFile("drugs.jsonl", _jsonl(DRUG_ROWS)))
    with pytest.raises(RuntimeError):
        tasks.graph_import_job_run(job.pk)
    job.refresh_from_db()
    assert (job.status, job.error, job.errors) == (JobStatus.FAILED, "RuntimeError: graph went away", [])
    page = admin_client.get(reverse("graph:import_job", kwargs={"pk": job.pk})).content.decode()
    assert 'data-testid="job-error"' in page and "graph went away" in page


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_upload_runs_on_a_real_worker(celery_workers, client, make_user):
    """Through the broker to the default-queue worker, which writes into the suite's own graph."""
    import time

    from django.conf import settings

    from graph.store import store_for

    store = store_for(settings.GRAPH)
    store.drop()
    client.force_login(make_user("admin"))
    rows = [r for r in DRUG_ROWS if r.get("kind") == "node" or r.get("type") == "IN_GROUP"]
    client.post(reverse("graph:import_upload"),
                {"kind": "generic", "upload": SimpleUploadedFile("drugs.jsonl", _jsonl(rows))})
    job = ImportJob.objects.get()
    deadline = time.monotonic() + 60
    while not job.finished and time.monotonic() < deadline:
        time.sleep(0.2)
        job.refresh_from_db()
    try:
        assert job.status == JobStatus.DONE, job.errors
        assert store.run("MATCH (d:Drug)-[:IN_GROUP]->(g:PharmGroup) RETURN d.key AS d, g.key AS g") == [
            {"d": "amoxicillin", "g": "penicillins"}]
    finally:
        store.drop()


def test_an_upload_is_audited(admin_client, graph_store):
    from medsyn_site.core.audit import audit_trail

    admin_client.post(reverse("graph:import_upload"),
                      {"kind": "generic", "upload": SimpleUploadedFile("drugs.jsonl", _jsonl(DRUG_ROWS))})
    job = ImportJob.objects.get()
    [record] = audit_trail(job)
    assert (record.action, record.to_state, record.extra["file"]) == ("import_graph", "queued", "drugs.jsonl")

