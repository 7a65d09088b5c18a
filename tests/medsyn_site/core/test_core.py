"""What every app shares: audit records, job progress written outside the caller's transaction, the API's error
mapping, text tools, ICD-10 parsing and the RuMedTop3 reader."""

from __future__ import annotations

import psycopg
import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from rest_framework.exceptions import NotAuthenticated

from graph.models import ImportJob
from medsyn_site.core.api import exception_handler
from medsyn_site.core.audit import audit_action_label, audit_record, audit_trail, audit_write
from medsyn_site.core.errors import InputError, StateConflict
from medsyn_site.core.icd10 import icd_category, icd_category_clean, icd_chapter, icd_code_clean, icd_label_for_key
from medsyn_site.core.models import AuditEvent, JobStatus
from medsyn_site.core.progress import ProgressRecorder
from medsyn_site.core.rumedbench import rumedtop3_read
from medsyn_site.core.text import content_hash, content_lemmas, words


def test_audit_refuses_an_action_that_is_not_an_audit_event(db, make_user):
    job = ImportJob.objects.create(original_name="x.jsonl", upload="x.jsonl")
    with pytest.raises(ValueError, match="unknown audit event"):
        audit_record(actor=None, action="approve-ish", obj=job)
    user = make_user("admin")
    record = audit_write(actor=user, action=AuditEvent.IMPORT_GRAPH, obj=job, extra={"nodes": 3})
    assert list(audit_trail(job)) == [record]
    assert record.object_type == "ImportJob" and audit_action_label(record.action) == "Graph imported"


@pytest.mark.django_db(transaction=True)
def test_progress_inside_a_transaction_is_visible_to_another_connection_at_once():
    """An all-or-nothing job holds one transaction; its progress must not wait for the commit."""
    job = ImportJob.objects.create(original_name="x.jsonl", upload="x.jsonl")
    params = connection.get_connection_params()
    seen = {}
    with transaction.atomic(), ProgressRecorder(job, min_interval=0) as progress:
        progress(40, 100)
        with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}) as other:
            seen["row"] = other.execute(f"SELECT progress_done, progress_total FROM {ImportJob._meta.db_table} "
                                        "WHERE id = %s", [job.pk]).fetchone()
    assert seen["row"] == (40, 100)
    job.refresh_from_db()
    assert (job.progress_done, job.progress_total, job.percent) == (40, 100, 40)


@pytest.mark.django_db(transaction=True)
def test_progress_outside_a_transaction_writes_through_django_and_skips_repeats():
    job = ImportJob.objects.create(original_name="x.jsonl", upload="x.jsonl")
    relayed = []
    progress = ProgressRecorder(job, also=lambda done, total: relayed.append(done), min_interval=0)
    for done in range(0, 1001):
        progress(done, 1000)
    job.refresh_from_db()
    assert job.progress_done == 1000 and relayed == list(range(0, 1001))
    assert progress._side is None  # no second connection was needed


@pytest.mark.django_db(transaction=True)
def test_job_runs_once_and_records_its_end():
    job = ImportJob.objects.create(original_name="x.jsonl", upload="x.jsonl")
    assert job.mark_running()
    job.mark_finished(JobStatus.DONE, changed=False)
    assert job.finished and job.unchanged and job.started_at <= job.finished_at
    assert not job.mark_running()  # a redelivered task finds it finished
    assert not job.mark_finished(JobStatus.FAILED, error="a late duplicate")  # and cannot overwrite its result
    assert job.status == JobStatus.DONE and job.error == ""


@pytest.mark.parametrize(("error", "status"), [
    (StateConflict("The study is closed."), 409),
    (ValidationError({"reason": ["say why"]}), 400),
    (ValidationError("plain message"), 400),
    (PermissionDenied("not yours"), 403),
    (NotAuthenticated(), 401),
])
def test_one_mapping_from_domain_errors_to_http(error, status):
    response = exception_handler(error, {})
    assert response.status_code == status
    if isinstance(error, ValidationError) and not isinstance(error, StateConflict):
        assert response.data in ({"reason": ["say why"]}, {"detail": "plain message"})


def test_exception_handler_leaves_unknown_errors_to_django():
    assert exception_handler(RuntimeError("boom"), {}) is None


def test_words_and_lemmas_are_one_tokeniser_for_every_app():
    assert words("Жалобы на одышку- слабость, 56лет, ЁЛКА лобно-височной") == [
        "жалобы", "на", "одышку", "слабость", "лет", "елка", "лобно-височной"]
    assert content_lemmas("Боли в горле и кашель") == ["боль", "горло", "кашель"]
    assert content_hash("  Кашель\n  сухой ", "J06") == content_hash("Кашель сухой", "J06")
    assert content_hash("Кашель", "J06") != content_hash("Кашель", "J05")


def test_icd10_parsing():
    assert icd_code_clean(" j06.9 ") == "J06.9" and icd_category("J06.9") == "J06"
    with pytest.raises(ValueError):
        icd_code_clean("J6")
    with pytest.raises(ValueError):
        icd_category_clean("J06.9")
    assert [icd_label_for_key(k) for k in ("J06", "J06.9", "J00-J06", "X", "??")] == [
        "Category", "Code", "Block", "Chapter", None]
    assert icd_chapter("J06") == "X" and icd_chapter("Q99.9.9") == "?"


def test_rumedtop3_reader_reports_every_bad_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"idx": "a", "symptoms": "Кашель", "code": "J06"}\n'
                    '{"idx": "b", "symptoms": "", "code": "J06"}\n\n'
                    '{"idx": "c", "symptoms": "Боль", "code": "нет"}\n'
                    '{broken\n', encoding="utf-8")
    with pytest.raises(InputError) as caught:
        rumedtop3_read(path)
    assert [line for line, _ in caught.value.problems] == [2, 4, 5]
    assert "nothing imported" in str(caught.value)
    good = tmp_path / "good.jsonl"
    good.write_text('{"idx": 7, "symptoms": " Кашель ", "code": "j06"}\n', encoding="utf-8")
    [record] = rumedtop3_read(good)
    assert (record.idx, record.text, record.code, record.line) == ("7", "Кашель", "J06", 1)
