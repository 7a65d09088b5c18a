"""Issue 11 (hardening), items 13 and 16 on the graph side, not covered elsewhere.

Item 13: a version's hash is of the content only, so the same content in another form (a byte-order mark, CRLF line
ends, lines or JSON keys in another order, another file name) publishes nothing new, directly and through the upload
page. Item 16: an upload whose import fails, or changes nothing, is deleted (the job keeps its name and problems);
one that published a version is kept as its provenance.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import reverse

from graph import tasks
from graph.importers import generic_payload
from graph.models import GraphVersion, ImportJob
from graph.services import graph_import
from medsyn_site.core.models import JobStatus

from .conftest import DRUG_ROWS

pytestmark = pytest.mark.django_db


def _lines(rows: list[dict], *, keys_reversed: bool = False) -> list[str]:
    return [json.dumps(dict(reversed(row.items())) if keys_reversed else row, ensure_ascii=False) for row in rows]


def _joined(lines: list[str], end: str = "\n") -> bytes:
    return "".join(line + end for line in lines).encode()


PLAIN = _joined(_lines(DRUG_ROWS))
SAME_CONTENT = {
    "byte-order mark": b"\xef\xbb\xbf" + PLAIN,
    "CRLF line ends": _joined(_lines(DRUG_ROWS), "\r\n"),
    "lines in another order": _joined(_lines(DRUG_ROWS[::-1])),
    "JSON keys in another order": _joined(_lines(DRUG_ROWS, keys_reversed=True)),
    "all of them": b"\xef\xbb\xbf" + _joined(_lines(DRUG_ROWS[::-1], keys_reversed=True), "\r\n"),
}


def _import(path: Path, store):
    return graph_import(source="generic", files=[path], parse=lambda: generic_payload(path), check_endpoints=True,
                        store=store)


@pytest.mark.parametrize("data", list(SAME_CONTENT.values()), ids=list(SAME_CONTENT))
def test_the_same_content_in_another_form_publishes_nothing_new(small_graph, graph_store, tmp_path, data):
    plain = tmp_path / "drugs.jsonl"
    plain.write_bytes(PLAIN)
    first = _import(plain, graph_store)
    assert first.changed
    versions = GraphVersion.objects.count()
    other = tmp_path / "другое-имя.jsonl"
    other.write_bytes(data)
    assert other.read_bytes() != PLAIN  # other bytes, so the files' digest cannot be what matches
    again = _import(other, graph_store)
    assert not again.changed and again.version.pk == first.version.pk
    assert GraphVersion.objects.count() == versions


@pytest.fixture
def admin_client(client, make_user, small_graph, monkeypatch, settings, tmp_path):
    """The upload page with its job run in-process when it is sent (as tests/graph/test_upload_job.py does)."""
    settings.MEDIA_ROOT = tmp_path
    monkeypatch.setattr(ImportJob, "task_send", lambda job: tasks.graph_import_job_run(job.pk))
    monkeypatch.setattr(transaction, "on_commit", lambda callback, *args, **kwargs: callback())
    client.force_login(make_user("admin"))
    return client


def _upload(client, name: str, data: bytes) -> ImportJob:
    client.post(reverse("graph:import_upload"), {"kind": "generic", "upload": SimpleUploadedFile(name, data)})
    return ImportJob.objects.order_by("-pk").first()


def _stored_files(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def test_an_upload_of_the_same_content_in_another_form_is_unchanged_and_its_file_deleted(admin_client, tmp_path):
    first = _upload(admin_client, "drugs.jsonl", PLAIN)
    assert (first.status, first.changed) == (JobStatus.DONE, True)
    kept = Path(first.upload.path)
    again = _upload(admin_client, "drugs (copy).jsonl", SAME_CONTENT["all of them"])
    assert (again.status, again.changed, again.version_id) == (JobStatus.DONE, False, first.version_id)
    assert not again.upload and again.original_name == "drugs (copy).jsonl"
    assert _stored_files(tmp_path) == [kept]  # the first upload is the provenance of its version; the copy is gone
    page = admin_client.get(reverse("graph:import_job", kwargs={"pk": again.pk})).content.decode()
    assert 'data-testid="upload-deleted"' in page and "already in the graph" in page


def test_a_failed_upload_is_deleted_and_its_job_keeps_the_name_and_problems(admin_client, tmp_path, graph_store):
    versions = GraphVersion.objects.count()
    failed = _upload(admin_client, "препараты.jsonl", PLAIN.decode().encode("cp1251"))
    assert failed.status == JobStatus.FAILED and not failed.changed
    assert not failed.upload and _stored_files(tmp_path) == []
    assert failed.original_name == "препараты.jsonl" and failed.error.startswith("препараты.jsonl: ")
    assert failed.errors[0]["message"].startswith("not UTF-8 text: it looks like Windows-1251")
    assert str(tmp_path) not in failed.error  # the server's path is not shown
    page = admin_client.get(reverse("graph:import_job", kwargs={"pk": failed.pk})).content.decode()
    assert 'data-testid="upload-deleted"' in page and "because the import failed" in page
    assert GraphVersion.objects.count() == versions
