"""The admin upload of a notes file, run as a Celery job: all or nothing, with line numbers."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from generation.models import Note, NoteImportJob
from generation.tasks import run_note_import

DATA = Path(__file__).parent / "data"


def _job(kind: str, name: str, content: bytes, split: str = "dev") -> NoteImportJob:
    return NoteImportJob.objects.create(kind=kind, split=split, upload=SimpleUploadedFile(name, content),
                                        original_name=name)


@pytest.mark.django_db
def test_good_file_imports_then_reimport_skips():
    content = (DATA / "rumedtop3_sample.jsonl").read_bytes()
    job = _job("rumedtop3", "dev.jsonl", content)
    run_note_import(job.pk)
    job.refresh_from_db()
    lines = len([line for line in content.decode().splitlines() if line.strip()])
    assert (job.status, job.progress, job.created, job.skipped) == ("done", 100, lines, 0)
    assert Note.objects.filter(origin="real", split="dev").count() == lines
    again = _job("rumedtop3", "dev-again.jsonl", content)
    run_note_import(again.pk)
    again.refresh_from_db()
    assert (again.created, again.skipped) == (0, lines)
    assert Note.objects.count() == lines


@pytest.mark.django_db
def test_malformed_file_reports_lines_and_imports_nothing():
    good = (DATA / "rumedtop3_sample.jsonl").read_text(encoding="utf-8").splitlines()
    broken = "\n".join([good[0], "{not json", good[1], '{"idx": "x", "symptoms": "", "code": "Q"}'])
    job = _job("rumedtop3", "broken.jsonl", broken.encode())
    run_note_import(job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and [e["line"] for e in job.errors] == [2, 4]
    assert Note.objects.count() == 0


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_admin_uploads_notes_and_watches_the_job(make_user, live_login, live_server, page, celery_workers):
    from playwright.sync_api import expect

    live_login(make_user("admin").username)
    page.goto(f"{live_server.url}/generation/import/")
    page.select_option("select[name=kind]", "medsyn_csv")
    page.set_input_files("input[name=upload]", str(DATA / "medsyn_sample.csv"))
    page.click("text=Upload and import")
    expect(page.locator("[data-testid=job-status]")).to_have_text("Done", timeout=30000)
    expect(page.locator("[data-testid=job-counts]")).to_contain_text("notes imported")
    assert Note.objects.filter(origin="synthetic").count() > 0


@pytest.mark.django_db
def test_only_admins_reach_the_upload(client, make_user):
    for role, status in (("researcher", 403), ("curator", 403), ("physician", 403), ("admin", 200)):
        client.force_login(make_user(role))
        assert client.get("/generation/import/").status_code == status, role
