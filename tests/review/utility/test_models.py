"""Evaluation sets and utility evaluations as stored: an upload imported all or nothing with every bad line reported,
the checks of a start by field, the database constraints, cancel, the latest evaluation of a release, and the
command line that repeats an evaluation to the same figures."""

from __future__ import annotations

import json
import shlex
from io import StringIO

import pytest
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.db import IntegrityError, transaction

from medsyn_site.core.errors import InputError, StateConflict
from medsyn_site.core.models import AuditRecord, JobStatus
from review.utility.classifiers import DEFAULT_CLASSIFIER
from review.utility.datasets import evaluation_set_notes, evaluation_set_read
from review.utility.evaluation import UtilityPlan
from review.utility.jobs import utility_evaluation_run
from review.utility.models import PLAN_DEFAULTS, EvaluationSet, EvaluationSetNote, UtilityEvaluation
from review.utility.overlap import OverlapThresholds
from review.utility.selectors import utility_command_line, utility_latest_for_release
from review.utility.services import (
    do_cancel_utility_evaluation,
    do_start_utility_evaluation,
    do_upload_evaluation_set,
    evaluation_set_jsonl,
)
from tests.review.utility.conftest import rumedtop3_lines

QUICK = {"grid": "quick", "seeds": 1, "bootstrap": 100, "classifier": "tfidf-svm"}


def upload(name: str, text: str) -> SimpleUploadedFile:
    return SimpleUploadedFile(name, text.encode("utf-8"), content_type="application/jsonl")


def start(**arguments) -> UtilityEvaluation:
    return do_start_utility_evaluation(**{"real_split": "train", "evaluation_split": "dev", **QUICK, **arguments},
                                       actor=None, enqueue=False)


def test_the_stored_defaults_are_the_engines():
    plan = UtilityPlan()
    assert {name: getattr(plan, name) for name in ("classifier", "grid", "upsample_to", "held_out_count",
                                                   "bootstrap")} == {
        name: PLAN_DEFAULTS[name] for name in ("classifier", "grid", "upsample_to", "held_out_count", "bootstrap")}
    assert PLAN_DEFAULTS["seeds"] == len(plan.seeds)
    assert PLAN_DEFAULTS["max_overlap"] == OverlapThresholds().max_share
    assert PLAN_DEFAULTS["classifier"] == DEFAULT_CLASSIFIER


def test_an_upload_stores_its_notes_with_the_hash_the_file_gives(db, notes_by_role, make_user, tmp_path):
    user = make_user("researcher")
    text = rumedtop3_lines(notes_by_role["evaluation"])
    stored = do_upload_evaluation_set(name="dev set", upload=upload("dev_v1.jsonl", text), actor=user)
    path = tmp_path / "dev_v1.jsonl"
    path.write_text(text, encoding="utf-8")
    read = evaluation_set_read(path)
    assert (stored.note_count, stored.code_count) == (20, 5)
    assert stored.sha256 == read.sha256 and stored.file_sha256 == read.source["file_sha256"]
    notes = evaluation_set_notes(stored)
    assert [note.key for note in notes.notes] == [note.key for note in read.notes]  # "dev_v1.jsonl:<line>"
    assert stored.created_by == user and stored.original_name == "dev_v1.jsonl"
    record = AuditRecord.objects.get(action="upload_evaluation_set")
    assert record.object_id == str(stored.pk) and record.extra["sha256"] == stored.sha256
    # The download is a file evaluate_utility --eval-file reads as the same notes.
    again = tmp_path / "again.jsonl"
    again.write_text("".join(evaluation_set_jsonl(stored)), encoding="utf-8")
    assert evaluation_set_read(again).sha256 == stored.sha256


def test_a_bad_upload_reports_every_bad_line_by_its_own_name_and_stores_nothing(db):
    text = ('{"idx": "a", "symptoms": "Кашель.", "code": "J06"}\n'
            '{"idx": "b", "symptoms": ""}\n'
            'not json\n'
            '{"idx": "c", "symptoms": "Боль.", "code": "кашель"}\n')
    with pytest.raises(InputError) as error:
        do_upload_evaluation_set(name="bad", upload=upload("mine.jsonl", text), actor=None)
    assert error.value.source == "mine.jsonl"
    assert [line for line, _message in error.value.problems] == [2, 3, 4]
    assert not EvaluationSet.objects.exists() and not EvaluationSetNote.objects.exists()


def test_an_upload_needs_a_free_name_and_a_note(db, notes_by_role):
    do_upload_evaluation_set(name="dev", upload=upload("a.jsonl", rumedtop3_lines(notes_by_role["evaluation"])),
                             actor=None)
    with pytest.raises(ValidationError) as taken:
        do_upload_evaluation_set(name="dev", upload=upload("b.jsonl", rumedtop3_lines(notes_by_role["real"])),
                                 actor=None)
    assert "name" in taken.value.message_dict
    with pytest.raises(ValidationError) as empty:
        do_upload_evaluation_set(name="empty", upload=upload("c.jsonl", "\n\n"), actor=None)
    assert "file" in empty.value.message_dict
    assert EvaluationSet.objects.count() == 1


def test_a_start_is_checked_by_field(stored_splits, release):
    with pytest.raises(ValidationError) as error:
        do_start_utility_evaluation(real_split="nosuch", evaluation_split="dev", synthetic="release", release=None,
                                    approved_filters={"state": "approved"}, held_out_codes=["кашель"],
                                    classifier="bert", grid="huge", seeds=0, bootstrap=50, max_overlap=1.5,
                                    actor=None, enqueue=False)
    problems = error.value.message_dict
    assert {"real_split", "release", "approved_filters", "held_out_codes", "classifier", "grid", "seeds",
            "bootstrap", "max_overlap"} <= set(problems)
    assert "Unknown filter key(s): state" in " ".join(problems["approved_filters"])
    with pytest.raises(ValidationError) as same:
        start(evaluation_split="train")
    assert "evaluation_split" in same.value.message_dict
    with pytest.raises(ValidationError) as both:
        start(evaluation_set=None, evaluation_split="")
    assert "evaluation_split" in both.value.message_dict
    with pytest.raises(ValidationError) as release_without_source:
        start(release=release)
    assert "release" in release_without_source.value.message_dict
    assert not UtilityEvaluation.objects.exists()


def test_a_start_stores_the_request_and_its_audit_record(stored_splits, release, make_user):
    user = make_user("researcher")
    evaluation = do_start_utility_evaluation(real_split="train", evaluation_split="dev", synthetic="release",
                                             release=release, held_out_codes="g43.1, J06", actor=user,
                                             enqueue=False, **QUICK)
    assert evaluation.status == JobStatus.QUEUED and evaluation.held_out_codes == ["G43", "J06"]
    assert (evaluation.seeds, evaluation.bootstrap, evaluation.created_by) == (1, 100, user)
    record = AuditRecord.objects.get(action="start_utility_evaluation")
    assert record.actor == user and record.extra["release"] == release.pk and record.extra["grid"] == "quick"


def test_the_database_refuses_an_evaluation_without_one_evaluation_set(stored_splits, release, notes_by_role):
    evaluation_set = do_upload_evaluation_set(name="dev", upload=upload("dev.jsonl", rumedtop3_lines(
        notes_by_role["evaluation"])), actor=None)
    for broken in ({"evaluation_split": "dev", "evaluation_set": evaluation_set}, {"evaluation_split": ""},
                   {"evaluation_split": "dev", "release": release},
                   {"evaluation_split": "dev", "synthetic": "release"}):
        with pytest.raises(IntegrityError), transaction.atomic():
            UtilityEvaluation.objects.create(real_split="train", **broken)


def test_cancel_stops_an_unfinished_evaluation_once(stored_splits, make_user):
    user = make_user("researcher")
    evaluation = start()
    cancelled = do_cancel_utility_evaluation(evaluation=evaluation, actor=user)
    assert cancelled.status == JobStatus.CANCELLED and cancelled.finished_at is not None
    assert AuditRecord.objects.filter(action="cancel_utility_evaluation", actor=user).count() == 1
    with pytest.raises(StateConflict):
        do_cancel_utility_evaluation(evaluation=evaluation, actor=user)
    utility_evaluation_run(evaluation.pk)  # a worker that takes it now leaves it alone
    evaluation.refresh_from_db()
    assert evaluation.status == JobStatus.CANCELLED and evaluation.result is None


def test_the_latest_finished_evaluation_of_a_release(stored_splits, release, approved_synthetic):
    assert utility_latest_for_release(release) is None
    first = start(synthetic="release", release=release)
    utility_evaluation_run(first.pk)
    failed = start(synthetic="release", release=release, held_out_codes=["Z99"])  # no such code: fails at run time
    utility_evaluation_run(failed.pk)
    approved = start(synthetic="approved")
    utility_evaluation_run(approved.pk)
    failed.refresh_from_db()
    assert failed.status == JobStatus.FAILED and "Z99" in failed.error
    assert utility_latest_for_release(release) == first
    second = start(synthetic="release", release=release)
    utility_evaluation_run(second.pk)
    assert utility_latest_for_release(release) == second


def test_the_command_line_repeats_the_evaluation_to_the_same_figures(stored_splits, release, notes_by_role,
                                                                    tmp_path):
    evaluation_set = do_upload_evaluation_set(name="dev file", upload=upload("dev.jsonl", rumedtop3_lines(
        notes_by_role["evaluation"])), actor=None)
    evaluation = start(synthetic="release", release=release, evaluation_split="", evaluation_set=evaluation_set,
                       held_out_codes=["G43"], upsample_to=6)
    utility_evaluation_run(evaluation.pk)
    evaluation.refresh_from_db()
    command = utility_command_line(evaluation)
    arguments = shlex.split(command)
    assert arguments[:2] == ["manage.py", "evaluate_utility"]
    assert "--eval-set" in arguments and "dev file" in arguments and "medsyn-ru:1" in arguments
    target = tmp_path / f"utility-{evaluation.pk}.json"
    arguments[arguments.index("--json") + 1] = str(target)
    call_command(*arguments[1:], stdout=StringIO(), stderr=StringIO())
    repeated = json.loads(target.read_text(encoding="utf-8"))
    assert repeated["inputs"]["held_out_codes"] == ["G43"] and repeated["inputs"]["upsample_to"] == 6
    assert {key: value for key, value in repeated.items() if key != "timings"} == {
        key: value for key, value in evaluation.result.items() if key != "timings"}


def test_approved_notes_are_taken_by_the_filter_a_release_would_use(stored_splits, approved_synthetic):
    evaluation = start(synthetic="approved", approved_filters={"model": "gpt-4", "job": "1"})
    assert evaluation.approved_filters == {"model": "gpt-4", "job": 1}
    assert "--approved --filter job=1 --filter model=gpt-4 --eval-split dev" in utility_command_line(evaluation)
    utility_evaluation_run(evaluation.pk)
    evaluation.refresh_from_db()
    assert evaluation.status == JobStatus.DONE, evaluation.error
    synthetic = evaluation.result["inputs"]["synthetic"]
    assert synthetic["kind"] == "approved" and synthetic["filters"] == {"model": "gpt-4", "job": 1}
    assert synthetic["notes"] == 22
    nothing = start(synthetic="approved", approved_filters={"job": "2"})  # no approved note of job 2
    utility_evaluation_run(nothing.pk)
    nothing.refresh_from_db()
    assert nothing.result["inputs"]["synthetic"]["notes"] == 0
    assert [cell["key"] for cell in nothing.result["cells"]] == ["real=1 synthetic=0"]
