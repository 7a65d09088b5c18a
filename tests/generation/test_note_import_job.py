"""Note import jobs: an admin's upload run as a Celery job, or an import command; all or nothing, with line numbers,
progress visible while the import's transaction is still open, and one audit record per import."""

from __future__ import annotations

import threading
from io import StringIO
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connections
from django.urls import reverse

from generation.models import Note, NoteImportJob
from generation.services import do_import_notes
from generation.signals import real_notes_imported
from generation.tasks import run_note_import
from medsyn_site.core.audit import audit_trail
from medsyn_site.core.models import AuditEvent, AuditRecord, JobStatus

from .factories import NoteImportJobFactory, rumedtop3_lines

DATA = Path(__file__).parent / "data"


@pytest.fixture
def media_root(settings, tmp_path):
    """Uploads in a directory of the test's own (not for a real worker: another process, with its own settings)."""
    settings.MEDIA_ROOT = tmp_path


@pytest.fixture
def received():
    """What real_notes_imported sends, call by call."""
    calls = []

    def receiver(sender: object, **kwargs: object) -> None:
        calls.append(kwargs)

    real_notes_imported.connect(receiver, dispatch_uid="test.generation.received")
    yield calls
    real_notes_imported.disconnect(dispatch_uid="test.generation.received")


def _read_elsewhere(job_id: int) -> dict:
    """The job's progress and the number of notes as another database connection sees them right now."""
    seen: dict = {}

    def read() -> None:
        try:
            seen.update(NoteImportJob.objects.values("progress_done", "progress_total").get(pk=job_id))
            seen["notes"] = Note.objects.count()
        finally:
            connections.close_all()  # this thread's connections

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    return seen


@pytest.mark.django_db
@pytest.mark.usefixtures("media_root")
def test_good_file_imports_with_its_audit_record_then_reimport_skips(make_user, received):
    admin = make_user("admin")
    content = (DATA / "rumedtop3_sample.jsonl").read_bytes()
    job = NoteImportJobFactory(upload__data=content, created_by=admin)
    run_note_import(job.pk)
    job.refresh_from_db()
    lines = len([line for line in content.decode().splitlines() if line.strip()])
    assert (job.status, job.created, job.skipped, job.error, job.errors) == ("done", lines, 0, "", [])
    assert (job.progress_done, job.progress_total, job.percent) == (lines, lines, 100)
    assert job.started_at and job.finished_at
    assert Note.objects.filter(origin="real", split="dev", source_dataset="RuMedTop3").count() == lines
    [record] = audit_trail(job)
    assert (record.actor, record.action, record.from_state, record.to_state) == (
        admin, AuditEvent.IMPORT_NOTES, JobStatus.RUNNING, JobStatus.DONE)
    assert record.extra == {"kind": "rumedtop3", "file": "dev.jsonl", "split": "dev", "source_dataset": "RuMedTop3",
                            "created": lines, "skipped": 0}
    assert [(call["count"], call["actor"]) for call in received] == [(lines, admin)]

    run_note_import(job.pk)  # a redelivered task: the job has finished, nothing happens
    assert audit_trail(job).count() == 1 and Note.objects.count() == lines

    again = NoteImportJobFactory(upload__data=content, original_name="dev-again.jsonl")
    run_note_import(again.pk)
    again.refresh_from_db()
    assert (again.status, again.created, again.skipped, again.percent) == ("done", 0, lines, 100)
    assert Note.objects.count() == lines and len(received) == 1
    assert audit_trail(again).get().extra["skipped"] == lines


@pytest.mark.django_db
@pytest.mark.usefixtures("media_root")
def test_malformed_file_reports_lines_and_imports_nothing():
    good = (DATA / "rumedtop3_sample.jsonl").read_text(encoding="utf-8").splitlines()
    broken = "\n".join([good[0], "{not json", good[1], '{"idx": "x", "symptoms": "", "code": "Q"}'])
    job = NoteImportJobFactory(upload__data=broken.encode())
    run_note_import(job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and [e["line"] for e in job.errors] == [2, 4]
    assert "2 problem(s), nothing imported" in job.error and job.finished_at
    assert Note.objects.count() == 0 and not AuditRecord.objects.exists()


@pytest.mark.django_db
@pytest.mark.usefixtures("media_root")
def test_a_failed_upload_is_deleted_and_its_job_keeps_the_name_and_problems(client, make_user):
    """Failed uploads were kept for ever (202 MB seen); the file of a successful import stays as its provenance."""
    cp1251 = (DATA / "rumedtop3_sample.jsonl").read_text(encoding="utf-8").encode("cp1251")
    failed = NoteImportJobFactory(upload__data=cp1251, original_name="visits.jsonl")
    stored = Path(failed.upload.path)
    assert stored.exists()
    run_note_import(failed.pk)
    failed.refresh_from_db()
    assert failed.status == "failed" and not failed.upload and not stored.exists()
    assert failed.original_name == "visits.jsonl" and failed.error.startswith("visits.jsonl: ")
    assert failed.errors[0] == {"line": 0, "message": "not UTF-8 text: it looks like Windows-1251 (Cyrillic); "
                                                      "save it as UTF-8 and upload it again"}
    client.force_login(make_user("admin"))
    page = client.get(reverse("generation:note_import_job", kwargs={"pk": failed.pk})).content.decode()
    assert 'data-testid="upload-deleted"' in page and "Windows-1251 (Cyrillic)" in page
    assert str(stored.parent) not in failed.error  # the server's path is not shown

    good = NoteImportJobFactory(upload__data=(DATA / "rumedtop3_sample.jsonl").read_bytes())
    run_note_import(good.pk)
    good.refresh_from_db()
    assert good.status == "done" and good.upload and Path(good.upload.path).exists()


@pytest.mark.django_db
def test_a_file_the_command_named_is_kept_when_its_import_fails(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes("Жалобы".encode("cp1251"))
    with pytest.raises(CommandError):
        call_command("import_real_notes", "--split", "train", "--file", str(bad), stdout=StringIO(),
                     stderr=StringIO())
    job = NoteImportJob.objects.get()
    assert job.status == "failed" and bad.exists() and job.file_path == str(bad.resolve())


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("media_root")
def test_progress_is_visible_while_the_import_transaction_is_still_open():
    """Bug 3: the import writes every note in one transaction; its progress must not wait for the commit."""
    job = NoteImportJobFactory(upload__data=rumedtop3_lines(1200))
    seen = []

    def look(done: int, total: int) -> None:
        seen.append(((done, total), _read_elsewhere(job.pk)))

    do_import_notes(job=job, progress=look)

    # When the second batch is written, the first one's progress (500 rows of 1200) is already visible to
    # another connection, while not one note is: the import's transaction is still open.
    assert seen[1] == ((1000, 1200), {"progress_done": 500, "progress_total": 1200, "notes": 0})
    job.refresh_from_db()
    assert (job.status, job.created, job.progress_done, job.progress_total) == ("done", 1200, 1200, 1200)


@pytest.mark.django_db
@pytest.mark.usefixtures("media_root")
def test_the_upload_page_queues_a_job_and_its_page_polls_until_done(client, make_user, monkeypatch,
                                                                    django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr(run_note_import, "apply_async", lambda args, queue, **options: sent.append((args, queue)))
    admin = make_user("admin")
    client.force_login(admin)
    upload = SimpleUploadedFile("release.csv", (DATA / "medsyn_sample.csv").read_bytes())
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("generation:note_import"), {"kind": "medsyn_csv", "split": "train",
                                                                   "upload": upload})
    job = NoteImportJob.objects.get()
    url = reverse("generation:note_import_job", kwargs={"pk": job.pk})
    assert response.status_code == 302 and response["Location"] == url and sent == [([job.pk], "default")]
    assert (job.kind, job.split, job.source_dataset, job.created_by, job.status) == (
        "medsyn_csv", "", "MedSyn", admin, "queued")
    assert client.get(url, HTTP_HX_REQUEST="true").status_code == 200

    run_note_import(job.pk)
    finished = client.get(url, HTTP_HX_REQUEST="true")
    assert finished.status_code == 286 and "3 notes imported, 0 already present" in finished.content.decode()
    assert Note.objects.filter(origin="synthetic", source_dataset="MedSyn").count() == 3


@pytest.mark.django_db
def test_the_import_command_records_an_import_job_and_its_audit_record(rumedtop3_file, received):
    out = StringIO()
    call_command("import_real_notes", "--split", "dev", "--file", str(rumedtop3_file), stdout=out, stderr=StringIO())
    job = NoteImportJob.objects.get()
    assert (job.status, job.kind, job.split, job.source_dataset, job.created, job.skipped) == (
        "done", "rumedtop3", "dev", "RuMedTop3", 5, 0)
    assert (job.file_path, job.original_name) == (str(rumedtop3_file.resolve()), rumedtop3_file.name)
    assert not job.upload
    [record] = audit_trail(job)
    assert (record.actor, record.action, record.to_state, record.extra["created"]) == (
        None, AuditEvent.IMPORT_NOTES, JobStatus.DONE, 5)
    assert [call["actor"] for call in received] == [None]


@pytest.mark.django_db
def test_a_bad_file_given_to_the_command_fails_its_job_with_the_lines(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("idx,response\n0,text\n", encoding="utf-8")
    err = StringIO()
    with pytest.raises(CommandError, match="1 problem"):
        call_command("import_medsyn_csv", "--file", str(bad), stdout=StringIO(), stderr=err)
    assert "bad.csv: line 1: missing column(s): ICD-10" in err.getvalue()
    job = NoteImportJob.objects.get()
    assert job.status == "failed" and job.errors[0]["line"] == 1 and not AuditRecord.objects.exists()


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
    expect(page.locator("[data-testid=job-progress]")).to_have_attribute("aria-valuenow", "100")
    assert Note.objects.filter(origin="synthetic").count() > 0


@pytest.mark.django_db
def test_only_admins_reach_the_upload(client, make_user):
    for role, status in (("researcher", 403), ("curator", 403), ("physician", 403), ("admin", 200)):
        client.force_login(make_user(role))
        assert client.get("/generation/import/").status_code == status, role
