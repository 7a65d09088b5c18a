"""A utility evaluation as a chunked job (review.utility.jobs, core.chunks): its fits are the units, one a chunk;
each fit is stored once; the result computed from the stored fits is exactly the result of the same evaluation run
in one process (evaluation.utility_evaluate); a worker lost mid-run, a chunk or the evaluation's task delivered
again redo no stored fit; a cancel inside a chunk stops before its next fit; notes that changed between chunks fail
the evaluation instead of mixing two runs; chunks run in threads of one process give the same result; and (marked
worker) two default-queue hosts share one evaluation."""

from __future__ import annotations

import json
import threading

import pytest
from django.db import connection

from medsyn_site.core.chunks import chunk_run, job_chunks
from medsyn_site.core.models import ChunkStatus, JobStatus
from review.utility import jobs
from review.utility.evaluation import UtilityRun, utility_evaluate
from review.utility.jobs import evaluation_note_sets, utility_evaluation_run
from review.utility.models import UtilityEvaluation, UtilityFit
from review.utility.services import do_cancel_utility_evaluation, do_start_utility_evaluation, evaluation_plan
from tests.generation import test_fleet
from tests.generation.factories import NoteFactory
from tests.generation.test_fleet import Fleet, fleet  # noqa: F401 (the fixture)

PAPER = {"grid": "paper", "seeds": 2, "bootstrap": 200}
LABEL = "utility.utilityevaluation"


class WorkerLost(Exception):
    """A worker that died mid-run (raised from the progress callback, after a fit was stored)."""


def start(**arguments) -> UtilityEvaluation:
    return do_start_utility_evaluation(**{"real_split": "train", "evaluation_split": "dev", "synthetic": "approved",
                                          **PAPER, **arguments}, actor=None, enqueue=False)


def one_process_result(evaluation: UtilityEvaluation) -> dict:
    """The same evaluation run the old way, in this process, as the database would store it (without timings)."""
    real, notes, synthetic = evaluation_note_sets(evaluation)
    result = utility_evaluate(real=real, evaluation=notes, synthetic=synthetic, plan=evaluation_plan(evaluation))
    stored = json.loads(json.dumps(result.as_json(), allow_nan=False))
    stored.pop("timings")
    return stored


def without_timings(result: dict) -> dict:
    return {key: value for key, value in result.items() if key != "timings"}


def lose_worker_at(fits: int):
    def progress(done: int, total: int) -> None:
        if done == fits:
            raise WorkerLost

    return progress


@pytest.fixture
def fits_counted(monkeypatch) -> list[int]:
    """The index of every fit computed in this process, in order."""
    computed = []
    fit = UtilityRun.fit

    def counted(run: UtilityRun, index: int):
        computed.append(index)
        return fit(run, index)

    monkeypatch.setattr(UtilityRun, "fit", counted)
    return computed


@pytest.fixture(autouse=True)
def no_runs_kept():
    """Each test starts as a fresh process would (no prepared run kept)."""
    jobs._runs.clear()
    yield
    jobs._runs.clear()


def assert_every_fit_once(evaluation: UtilityEvaluation) -> None:
    fits = evaluation.prepared["fits"]
    assert list(evaluation.fits.order_by("index").values_list("index", flat=True)) == list(range(fits))
    assert evaluation.progress_done == evaluation.progress_total == fits == evaluation.result["timings"]["fits"]
    chunks = job_chunks(evaluation)
    assert chunks.count() == fits and set(chunks.values_list("status", flat=True)) == {ChunkStatus.DONE}
    assert list(chunks.order_by("index").values_list("first", "end")) == [(index, index + 1) for index in range(fits)]


@pytest.mark.parametrize("classifier", ["tfidf-lr", "tfidf-svm"])
def test_the_chunked_run_stores_the_result_of_one_process(stored_splits, approved_synthetic, classifier,
                                                          fits_counted):
    evaluation = start(classifier=classifier, held_out_codes=["G43"])
    utility_evaluation_run(evaluation.pk)
    evaluation.refresh_from_db()
    assert evaluation.status == JobStatus.DONE, evaluation.error
    assert_every_fit_once(evaluation)
    assert fits_counted == list(range(evaluation.prepared["fits"]))
    assert len(evaluation.result["cells"]) == 15 and evaluation.result["inputs"]["seeds"] == [0, 1]
    assert without_timings(evaluation.result) == one_process_result(evaluation)
    assert evaluation.overlap == evaluation.result["overlap"]


def test_a_lost_worker_and_deliveries_again_redo_no_stored_fit(stored_splits, approved_synthetic, fits_counted):
    evaluation = start()
    with pytest.raises(WorkerLost):
        utility_evaluation_run(evaluation.pk, on_progress=lose_worker_at(3))
    evaluation.refresh_from_db()
    assert evaluation.status == JobStatus.RUNNING and evaluation.progress_done == 3
    first = {fit.index: fit.pk for fit in evaluation.fits.all()}
    assert sorted(first) == fits_counted == [0, 1, 2]
    lost = job_chunks(evaluation).get(index=2)
    assert lost.status == ChunkStatus.QUEUED and lost.attempts == 1  # its fit was stored before the worker died

    chunk_run(LABEL, evaluation.pk, 2)  # the sweep sends the lost chunk again: its fit is there
    assert fits_counted == [0, 1, 2] and job_chunks(evaluation).get(index=2).status == ChunkStatus.DONE
    utility_evaluation_run(evaluation.pk)  # the evaluation's task delivered again: only the missing fits
    evaluation.refresh_from_db()
    assert evaluation.status == JobStatus.DONE, evaluation.error
    assert_every_fit_once(evaluation)
    assert fits_counted == list(range(evaluation.prepared["fits"]))  # each fit computed once in all
    assert {fit.index: fit.pk for fit in evaluation.fits.filter(index__lt=3)} == first
    assert without_timings(evaluation.result) == one_process_result(evaluation)

    chunk_run(LABEL, evaluation.pk, 0)  # a chunk of a finished evaluation: nothing happens
    assert UtilityFit.objects.filter(evaluation=evaluation).count() == evaluation.prepared["fits"]


def test_a_cancel_inside_a_chunk_stops_before_its_next_fit(stored_splits, approved_synthetic, settings,
                                                           fits_counted):
    settings.JOB_CHUNK_SIZE = 4
    evaluation = start()

    def cancel_at_second_fit(done: int, total: int) -> None:
        if done == 2:
            do_cancel_utility_evaluation(evaluation=evaluation, actor=None)

    utility_evaluation_run(evaluation.pk, on_progress=cancel_at_second_fit)
    evaluation.refresh_from_db()
    assert evaluation.status == JobStatus.CANCELLED and evaluation.result is None
    assert fits_counted == [0, 1] and evaluation.fits.count() == 2
    first = job_chunks(evaluation).get(index=0)
    assert (first.first, first.end, first.status) == (0, 4, ChunkStatus.QUEUED)  # two of its fits left
    assert not job_chunks(evaluation).exclude(index=0).exclude(status=ChunkStatus.QUEUED).exists()


def test_notes_changed_between_chunks_fail_the_evaluation(stored_splits, approved_synthetic, fits_counted):
    evaluation = start()
    with pytest.raises(WorkerLost):
        utility_evaluation_run(evaluation.pk, on_progress=lose_worker_at(1))
    NoteFactory(text="Жалобы на кашель и насморк, новая запись.", icd_code="J06", split="train")
    jobs._runs.clear()  # the next chunk runs in another process, which reads the notes as they are now
    chunk_run(LABEL, evaluation.pk, 1)
    evaluation.refresh_from_db()
    assert evaluation.status == JobStatus.FAILED and evaluation.result is None
    assert "The notes changed while the evaluation ran (the real training notes)" in evaluation.error
    assert fits_counted == [0] and evaluation.fits.count() == 1


@pytest.mark.django_db(transaction=True)
def test_chunks_in_threads_of_one_process_give_the_same_result(stored_splits, approved_synthetic, fits_counted):
    evaluation = start(classifier="tfidf-svm")  # liblinear: its fits in one process take turns
    with pytest.raises(WorkerLost):
        utility_evaluation_run(evaluation.pk, on_progress=lose_worker_at(1))
    chunks = list(job_chunks(evaluation).order_by("index").values_list("index", flat=True))
    errors = []

    def worker_thread(indexes: list[int]) -> None:
        try:
            for index in indexes:
                chunk_run(LABEL, evaluation.pk, index)
        except Exception as error:  # noqa: BLE001 - reported by the test
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker_thread, args=(chunks[offset::2],)) for offset in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    evaluation.refresh_from_db()
    assert evaluation.status == JobStatus.DONE, evaluation.error
    assert_every_fit_once(evaluation)
    assert sorted(fits_counted) == list(range(evaluation.prepared["fits"]))
    assert without_timings(evaluation.result) == one_process_result(evaluation)


@pytest.mark.worker
@pytest.mark.django_db(transaction=True)
def test_two_default_hosts_share_one_evaluation_and_store_every_fit_once(fleet, stored_splits,  # noqa: F811
                                                                         approved_synthetic):
    for name in ("host-a", "host-b"):
        fleet.start(name, ["default"])
    for name in ("host-a", "host-b"):
        fleet.wait_ready(name, "default")
    evaluation = do_start_utility_evaluation(real_split="train", evaluation_split="dev", synthetic="approved",
                                             classifier="tfidf-svm", actor=None, **PAPER)
    evaluation = test_fleet.job_wait(evaluation, timeout=180)
    assert evaluation.status == JobStatus.DONE, (evaluation.status, evaluation.error)
    assert_every_fit_once(evaluation)
    fitted = {worker.split("@")[0] for worker in evaluation.fits.values_list("worker", flat=True)}
    assert fitted == {"host-a", "host-b"}  # both hosts fitted, and no other worker
    assert without_timings(evaluation.result) == one_process_result(evaluation)
