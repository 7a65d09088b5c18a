"""The run a default-queue worker does: progress in fits, the result and the overlap report stored, a refused
overlap or an impossible plan failing the job with the reason, cancel between fits, a finished job never run again,
a redelivered running job run once more to the same result; the task on the default queue, and (marked worker) a
tiny evaluation end to end through a real worker, its fits in chunks. The chunks themselves: test_jobs.py."""

from __future__ import annotations

import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from medsyn_site.core import jobs
from medsyn_site.core.models import JobChunk, JobStatus
from review.utility.evaluation import REAL_ONLY
from review.utility.jobs import utility_evaluation_run
from review.utility.models import UtilityEvaluation
from review.utility.services import (
    do_cancel_utility_evaluation,
    do_start_utility_evaluation,
    do_upload_evaluation_set,
)
from review.utility.tasks import run_utility_evaluation
from tests.review.utility.conftest import rumedtop3_lines

QUICK = {"grid": "quick", "seeds": 1, "bootstrap": 100, "classifier": "tfidf-svm"}
WITH_SYNTHETIC = "real=1 synthetic=1"


def start(**arguments) -> UtilityEvaluation:
    return do_start_utility_evaluation(**{"real_split": "train", "evaluation_split": "dev", **QUICK, **arguments},
                                       actor=None, enqueue=False)


def test_a_run_stores_the_result_the_overlap_and_its_progress_in_fits(stored_splits, approved_synthetic):
    evaluation = start(synthetic="approved", held_out_codes=["G43"])
    seen = []
    utility_evaluation_run(evaluation.pk, on_progress=lambda done, total: seen.append((done, total)))
    evaluation.refresh_from_db()
    assert evaluation.status == JobStatus.DONE and evaluation.error == "" and evaluation.step == ""
    fits = evaluation.result["timings"]["fits"]
    assert seen == [(done, fits) for done in range(1, fits + 1)]
    assert (evaluation.progress_done, evaluation.progress_total) == (fits, fits)
    assert evaluation.overlap == evaluation.result["overlap"] and evaluation.overlap["refused"] is False
    cells = {cell["key"]: cell for cell in evaluation.result["cells"]}
    assert {REAL_ONLY, WITH_SYNTHETIC, "synthetic_only", "upsampling", "out_of_training"} == set(cells)
    assert evaluation.result["inputs"]["synthetic"]["kind"] == "approved"
    assert evaluation.result["inputs"]["held_out_codes"] == ["G43"]
    g43 = next(row for row in evaluation.result["per_code"] if row["code"] == "G43")
    assert g43["cells"][WITH_SYNTHETIC]["accuracy"] > g43["cells"][REAL_ONLY]["accuracy"]
    assert evaluation.started_at is not None and evaluation.finished_at >= evaluation.started_at


def test_an_evaluation_set_the_training_notes_contain_fails_with_the_overlap_report(stored_splits, notes_by_role):
    copied = do_upload_evaluation_set(name="train copy", upload=SimpleUploadedFile(
        "train.jsonl", rumedtop3_lines(notes_by_role["real"]).encode()), actor=None)
    evaluation = start(evaluation_split="", evaluation_set=copied)
    utility_evaluation_run(evaluation.pk)
    evaluation.refresh_from_db()
    assert evaluation.status == JobStatus.FAILED and evaluation.result is None
    assert "33 of 33 evaluation notes" in evaluation.error
    assert evaluation.overlap["refused"] is True and evaluation.overlap["evaluation_overlapped"] == 33
    assert evaluation.overlap["real"]["exact"] == 33


def test_a_plan_the_notes_cannot_carry_fails_with_the_reason(stored_splits, approved_synthetic):
    evaluation = start(synthetic="approved", held_out_codes=["K30"])
    utility_evaluation_run(evaluation.pk)
    evaluation.refresh_from_db()
    assert evaluation.status == JobStatus.FAILED
    assert "Codes to hold out need real training, synthetic and evaluation notes" in evaluation.error
    assert "K30" in evaluation.error


def test_cancel_stops_the_run_after_the_current_fit(stored_splits, approved_synthetic):
    evaluation = start(synthetic="approved")
    seen = []

    def cancel_at_first_fit(done: int, total: int) -> None:
        seen.append((done, total))
        if done == 1:
            do_cancel_utility_evaluation(evaluation=evaluation, actor=None)

    utility_evaluation_run(evaluation.pk, on_progress=cancel_at_first_fit)
    evaluation.refresh_from_db()
    assert evaluation.status == JobStatus.CANCELLED and evaluation.result is None
    assert len(seen) == 1 and seen[0][1] > 1  # no fit after the cancel


def test_a_finished_evaluation_is_not_run_again_and_a_redelivered_one_runs_to_the_same_result(stored_splits,
                                                                                            approved_synthetic):
    evaluation = start(synthetic="approved")
    utility_evaluation_run(evaluation.pk)
    evaluation.refresh_from_db()
    finished_at, result = evaluation.finished_at, evaluation.result

    calls = []
    run_utility_evaluation.run(evaluation.pk)  # the task body, delivered a second time
    utility_evaluation_run(evaluation.pk, on_progress=lambda done, total: calls.append(done))
    evaluation.refresh_from_db()
    assert calls == [] and evaluation.finished_at == finished_at and evaluation.result == result

    # A worker died mid-run: the sweep sends it again while it still reads "running".
    redelivered = start(synthetic="approved")
    UtilityEvaluation.objects.filter(pk=redelivered.pk).update(status=JobStatus.RUNNING, worker="gone@host 1",
                                                               progress_done=2, progress_total=5)
    utility_evaluation_run(redelivered.pk)
    redelivered.refresh_from_db()
    assert redelivered.status == JobStatus.DONE
    assert {key: value for key, value in redelivered.result.items() if key != "timings"} == {
        key: value for key, value in result.items() if key != "timings"}


def test_the_task_goes_to_the_default_queue_and_the_workers_know_it(stored_splits, monkeypatch):
    from medsyn_site.celery import app

    sent = []
    monkeypatch.setattr(jobs, "task_send", lambda task, *, args, queue: sent.append((task.name, args, queue)))
    evaluation = start()
    evaluation.task_send()
    assert sent == [("utility.run_utility_evaluation", [evaluation.pk], "default")]
    app.loader.import_default_modules()
    assert "utility.run_utility_evaluation" in app.tasks
    assert UtilityEvaluation in jobs.job_models()  # the sweep of dead workers' jobs covers it


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_tiny_evaluation_runs_end_to_end_on_the_default_worker(celery_workers, stored_splits, approved_synthetic):
    evaluation = do_start_utility_evaluation(real_split="train", evaluation_split="dev", synthetic="approved",
                                             actor=None, **QUICK)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        evaluation.refresh_from_db()
        if evaluation.finished:
            break
        time.sleep(0.2)
    assert evaluation.status == JobStatus.DONE, evaluation.error
    chunks = JobChunk.objects.filter(job_model="utility.utilityevaluation", job_id=evaluation.pk)
    assert chunks.count() == evaluation.result["timings"]["fits"]  # a chunk a fit, run by the default worker
    assert {worker.split("@")[0] for worker in chunks.values_list("worker", flat=True)} == {"default"}
    assert evaluation.progress_done == evaluation.progress_total == evaluation.result["timings"]["fits"] > 0
    assert {cell["key"] for cell in evaluation.result["cells"]} >= {REAL_ONLY, WITH_SYNTHETIC}
