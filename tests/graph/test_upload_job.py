"""The admin upload page and its Celery job (run in-process here; the task body is the unit under test)."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from graph import tasks
from graph.models import ImportJob

from .conftest import DRUG_ROWS

pytestmark = pytest.mark.django_db


def _jsonl(rows) -> bytes:
    import json

    return "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows).encode()


@pytest.fixture
def admin_client(client, make_user, small_graph, monkeypatch, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    monkeypatch.setattr(tasks.graph_import_job_run, "delay", lambda job_id: tasks.graph_import_job_run(job_id))
    client.force_login(make_user("admin"))
    return client


def test_upload_imports_and_job_page_stops_polling(admin_client, graph_store):
    upload = SimpleUploadedFile("drugs.jsonl", _jsonl(DRUG_ROWS))
    response = admin_client.post(reverse("graph:import_upload"), {"kind": "generic", "upload": upload})
    job = ImportJob.objects.get()
    assert response.status_code == 302 and job.status == ImportJob.Status.DONE and job.version is not None
    assert graph_store.run("MATCH (d:Drug) RETURN d.key AS k") == [{"k": "amoxicillin"}]
    poll = admin_client.get(reverse("graph:import_job", kwargs={"pk": job.pk}), HTTP_HX_REQUEST="true")
    assert poll.status_code == 286 and b"Done" in poll.content


def test_bad_upload_lists_problems_and_imports_nothing(admin_client, graph_store):
    upload = SimpleUploadedFile("bad.jsonl", _jsonl([DRUG_ROWS[0], "{oops", {"kind": "node", "label": "X"}]))
    admin_client.post(reverse("graph:import_upload"), {"kind": "generic", "upload": upload})
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.FAILED
    assert [e["line"] for e in job.errors] == [2, 3]
    assert graph_store.run("MATCH (d:PharmGroup) RETURN count(d) AS c") == [{"c": 0}]
    page = admin_client.get(reverse("graph:import_job", kwargs={"pk": job.pk})).content.decode()
    assert "line 2" in page


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
        assert job.status == ImportJob.Status.DONE, job.errors
        assert store.run("MATCH (d:Drug)-[:IN_GROUP]->(g:PharmGroup) RETURN d.key AS d, g.key AS g") == [
            {"d": "amoxicillin", "g": "penicillins"}]
    finally:
        store.drop()
