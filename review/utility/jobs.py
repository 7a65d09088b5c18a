"""The run of a utility evaluation: a chunked job on the default queue (core.chunks) whose units are the run's
distinct classifier fits, so every default worker, on any host, takes part in one evaluation.

- The evaluation's own task (utility_evaluation_run) reads the notes, checks their overlap with the evaluation set
  and plans the run (evaluation.utility_prepare), records what it prepared on the evaluation (run_record: the notes'
  content hashes, the overlap exclusions, the number of fits, the run's fingerprint), and dispatches the fits not yet
  stored, FITS_PER_CHUNK to a chunk.
- A chunk (utility_chunk_execute) prepares the same run in its process from the same notes and the recorded overlap
  exclusions (kept by the process for the evaluation's next chunks: the n-gram counts above all), checks it is the
  run recorded (a note set that changed meanwhile fails the evaluation: fits of two different runs never mix), and
  stores each fit once (UtilityFit, unique per evaluation and index), with the evaluation's progress, in one
  transaction. A cancel is seen before each fit.
- The chunk that completes the run last (utility_chunks_finish) computes the result from the stored fits
  (evaluation.utility_result: intervals, paired tests, tables, heat map inputs): the same result as
  evaluation.utility_evaluate gives in one process for the same notes and plan.

A coordinator delivered again (its worker died) keeps what it recorded and dispatches only the fits still missing;
a chunk delivered again skips its stored fits. Outside a worker (a test, a management command) the chunks run one
after another in the calling process, which also passes its progress callback to them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from contextvars import ContextVar

import numpy as np
import scipy
import sklearn
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from medsyn_site.core.chunks import chunk_size_default, chunks_dispatch
from medsyn_site.core.jobs import worker_identity
from medsyn_site.core.models import JobChunk, JobPhase, JobStatus
from medsyn_site.core.progress import Progress, ProgressRecorder
from review.releases.services import release_card_refresh

from .datasets import (
    NoteSet,
    approved_synthetic_notes,
    evaluation_set_notes,
    real_notes_of_split,
    release_synthetic_notes,
)
from .evaluation import UtilityRun, utility_prepare, utility_result
from .metrics import Predictions
from .models import UtilityEvaluation, UtilityFit
from .overlap import OverlapRefused, OverlapReport
from .services import evaluation_plan

logger = logging.getLogger("medsyn.jobs")

FITS_PER_CHUNK = 1  # a fit takes seconds to minutes: one a chunk spreads a grid's 37 fits over every worker
RUNS_CACHED = 2  # prepared runs a process keeps (their n-gram counts can take hundreds of MB each)
PREDICTION_DTYPE = "<i4"  # label indices and ranks as UtilityFit stores them

# The progress callback of a run whose chunks run in this process (no worker: chunks_dispatch runs them inline).
_inline_progress: ContextVar[Progress | None] = ContextVar("utility_inline_progress", default=None)


class RunChanged(Exception):
    """What a chunk reads is not the run the evaluation recorded (notes changed meanwhile, other library versions):
    the evaluation fails with this message rather than mix fits of two runs."""


def evaluation_note_sets(evaluation: UtilityEvaluation) -> tuple[NoteSet, NoteSet, NoteSet | None]:
    """(real training notes, evaluation set, synthetic notes or None) as the run reads them now."""
    real = real_notes_of_split(evaluation.real_split)
    notes = (evaluation_set_notes(evaluation.evaluation_set) if evaluation.evaluation_set_id
             else real_notes_of_split(evaluation.evaluation_split))
    synthetic = None
    if evaluation.synthetic == UtilityEvaluation.Synthetic.RELEASE:
        synthetic = release_synthetic_notes(evaluation.release)
    elif evaluation.synthetic == UtilityEvaluation.Synthetic.APPROVED:
        synthetic = approved_synthetic_notes(evaluation.approved_filters)
    return real, notes, synthetic


def _versions() -> dict[str, str]:
    return {"scikit-learn": sklearn.__version__, "numpy": np.__version__, "scipy": scipy.__version__}


def run_record(run: UtilityRun) -> dict:
    """What UtilityEvaluation.prepared keeps of a prepared run, for its chunks to prepare the same one."""
    return {"fingerprint": run.fingerprint, "fits": run.fit_count, "overlap_s": run.overlap_s,
            "notes": {"real": run.real.sha256, "evaluation": run.evaluation.sha256,
                      "synthetic": run.synthetic.sha256 if run.synthetic is not None else None},
            "overlap": run.overlap.record(), "versions": _versions()}


def _run_read(evaluation: UtilityEvaluation) -> UtilityRun:
    """The run the evaluation recorded, prepared again in this process from the notes (read now) and the recorded
    overlap exclusions; RunChanged when it is not the same."""
    prepared = evaluation.prepared
    if (versions := _versions()) != prepared["versions"]:
        raise RunChanged(_("This worker runs %(here)s, while the evaluation began with %(there)s: the fits would not "
                           "be comparable. Give the workers of the default queue the same versions and run the "
                           "evaluation again.") % {
            "here": ", ".join(f"{name} {version}" for name, version in versions.items()),
            "there": ", ".join(f"{name} {version}" for name, version in prepared["versions"].items())})
    real, notes, synthetic = evaluation_note_sets(evaluation)
    read = {"real": real.sha256, "evaluation": notes.sha256,
            "synthetic": synthetic.sha256 if synthetic is not None else None}
    if changed := [name for name, sha256 in read.items() if sha256 != prepared["notes"][name]]:
        names = {"real": _("the real training notes"), "evaluation": _("the evaluation set"),
                 "synthetic": _("the synthetic notes")}
        raise RunChanged(_("The notes changed while the evaluation ran (%(sets)s): run it again to evaluate them as "
                           "they are now.") % {"sets": ", ".join(str(names[name]) for name in changed)})
    run = utility_prepare(real=real, evaluation=notes, synthetic=synthetic, plan=evaluation_plan(evaluation),
                          overlap=OverlapReport.from_record(prepared["overlap"]))
    if run.fingerprint != prepared["fingerprint"]:
        raise RunChanged(_("This worker plans other fits than the evaluation recorded: run it again."))
    return run


# --- The runs a process keeps -------------------------------------------------------------------------------------

_runs: OrderedDict[tuple[int, str], UtilityRun] = OrderedDict()
_runs_lock = threading.Lock()
_preparing: dict[tuple[int, str], threading.Lock] = {}


def _runs_put(key: tuple[int, str], run: UtilityRun) -> None:
    with _runs_lock:
        _runs[key] = run
        _runs.move_to_end(key)
        while len(_runs) > RUNS_CACHED:
            _runs.popitem(last=False)


def _runs_drop_finished() -> None:
    """Forget the runs of evaluations that are no longer running (their memory goes back)."""
    with _runs_lock:
        kept = {pk for pk, _fingerprint in _runs}
    if not kept:
        return
    running = set(UtilityEvaluation.objects.filter(pk__in=kept, status=JobStatus.RUNNING).values_list("pk", flat=True))
    with _runs_lock:
        for key in [key for key in _runs if key[0] not in running]:
            del _runs[key]


def evaluation_run(evaluation: UtilityEvaluation) -> UtilityRun:
    """The evaluation's recorded run, prepared once per process (threads asking meanwhile wait for it) and kept for
    its next chunks. RunChanged when the notes now read give another run."""
    key = (evaluation.pk, evaluation.prepared["fingerprint"])
    with _runs_lock:
        if (run := _runs.get(key)) is not None:
            _runs.move_to_end(key)
            return run
        lock = _preparing.setdefault(key, threading.Lock())
    with lock:
        with _runs_lock:
            if (run := _runs.get(key)) is not None:
                return run
        _runs_drop_finished()
        try:
            run = _run_read(evaluation)
        finally:
            with _runs_lock:
                _preparing.pop(key, None)
        _runs_put(key, run)
        return run


# --- The job ------------------------------------------------------------------------------------------------------

def utility_evaluation_run(evaluation_id: int, on_progress: Progress | None = None) -> None:
    """The evaluation's own task: run a queued evaluation (or one delivered again while running). The first time,
    read its notes, check their overlap and plan the run, recording it (a refusal, too much overlap or a plan the
    notes cannot carry, fails it with the reason); then dispatch its fits not yet stored in chunks. Progress is in
    fits; in a process with no worker the chunks run here and their progress goes to on_progress too."""
    evaluation = UtilityEvaluation.objects.select_related("release", "evaluation_set").get(pk=evaluation_id)
    if not evaluation.mark_running():
        return
    try:
        with ProgressRecorder(evaluation, min_interval=0) as recorder:
            recorder.phase_set(JobPhase.RUNNING)  # this run's activity: a previous run's samples are dropped
            recorder.write(step=gettext_noop("Reading the notes"))
            # delivered again: the run recorded stands
            run = evaluation_run(evaluation) if evaluation.prepared else _run_prepare(evaluation, recorder)
            stored = set(evaluation.fits.values_list("index", flat=True))
            recorder.write(step=gettext_noop("Fitting the classifiers"), progress_done=len(stored),
                           progress_total=run.fit_count)
    except OverlapRefused as error:
        evaluation.mark_finished(JobStatus.FAILED, error=" ".join(error.messages), step="",
                                 overlap=error.report.describe())
        return
    except ValidationError as error:
        evaluation.mark_finished(JobStatus.FAILED, error=" ".join(error.messages), step="")
        return
    except RunChanged as error:
        evaluation.mark_finished(JobStatus.FAILED, error=str(error), step="")
        return
    except Exception as error:
        evaluation.mark_finished(JobStatus.FAILED, error=f"{type(error).__name__}: {error}", step="")
        raise
    token = _inline_progress.set(on_progress)
    try:
        chunks_dispatch(evaluation, end=run.fit_count, size=chunk_size_default(FITS_PER_CHUNK),
                        pending=[index for index in range(run.fit_count) if index not in stored])
    finally:
        _inline_progress.reset(token)


def _run_prepare(evaluation: UtilityEvaluation, recorder: ProgressRecorder) -> UtilityRun:
    """Read the notes, check the overlap, plan the run and record it on the evaluation (kept by this process)."""
    real, notes, synthetic = evaluation_note_sets(evaluation)
    recorder.write(step=gettext_noop("Checking overlap with the evaluation set"))
    run = utility_prepare(real=real, evaluation=notes, synthetic=synthetic, plan=evaluation_plan(evaluation))
    evaluation.prepared = run_record(run)
    UtilityEvaluation.objects.filter(pk=evaluation.pk).update(prepared=evaluation.prepared)
    _runs_put((evaluation.pk, run.fingerprint), run)
    return run


def _running(evaluation_id: int) -> bool:
    return UtilityEvaluation.objects.filter(pk=evaluation_id, status=JobStatus.RUNNING).exists()


def _fail(evaluation_id: int, error: str) -> None:
    UtilityEvaluation.objects.get(pk=evaluation_id).mark_finished(JobStatus.FAILED, error=error, step="")


def utility_chunk_execute(evaluation: UtilityEvaluation, chunk: JobChunk) -> bool:
    """Run one chunk (core.chunks): each of its fits not yet stored, a cancel seen before each. True when every fit
    of the chunk is stored."""
    evaluation = UtilityEvaluation.objects.select_related("release", "evaluation_set").get(pk=evaluation.pk)
    stored = set(evaluation.fits.filter(index__gte=chunk.first, index__lt=chunk.end).values_list("index", flat=True))
    todo = [index for index in range(chunk.first, chunk.end) if index not in stored]
    if not todo:
        return True
    try:
        run = evaluation_run(evaluation)
    except RunChanged as error:
        _fail(evaluation.pk, str(error))
        return False
    except Exception as error:  # the page must not show "running" forever; the task records the traceback
        _fail(evaluation.pk, f"{type(error).__name__}: {error}")
        raise
    listener = _inline_progress.get()
    with ProgressRecorder(evaluation, min_interval=0, shared=True) as recorder:
        for index in todo:
            if not _running(evaluation.pk):
                return False  # cancelled (or failed by another chunk): the rest of the chunk is not fitted
            try:
                _space, features_s = run.features()
                started = time.monotonic()
                fitted = run.fit(index)
                fit_s = time.monotonic() - started
            except Exception as error:
                _fail(evaluation.pk, f"{type(error).__name__}: {error}")
                raise
            done = _fit_store(evaluation.pk, run, index, fitted, fit_s=fit_s, features_s=features_s)
            if done is None:
                continue  # another delivery of the chunk stored it first
            recorder.in_flight(done, run.fit_count)
            if done == run.fit_count:  # the last fit: the result comes next (not written then: the row is locked)
                recorder.write(step=gettext_noop("Computing the intervals and tests"))
            if listener is not None:
                listener(done, run.fit_count)
    return True


def _fit_store(evaluation_id: int, run: UtilityRun, index: int, fitted: Predictions, *, fit_s: float,
               features_s: float) -> int | None:
    """Store fit index once, counting it in the evaluation's progress in the same transaction; the fits done now,
    or None when it was stored already."""
    with transaction.atomic():
        _fit, created = UtilityFit.objects.get_or_create(
            evaluation_id=evaluation_id, index=index,
            defaults={"training_sha256": run.training_sha256(index),
                      "predicted": fitted.predicted.astype(PREDICTION_DTYPE).tobytes(),
                      "rank": fitted.rank.astype(PREDICTION_DTYPE).tobytes(),
                      "fit_seconds": fit_s, "features_seconds": features_s, "worker": worker_identity()})
        if not created:
            return None
        UtilityEvaluation.objects.filter(pk=evaluation_id).update(progress_done=F("progress_done") + 1,
                                                                  updated_at=timezone.now())
    return UtilityEvaluation.objects.filter(pk=evaluation_id).values_list("progress_done", flat=True).get()


def fit_predictions(fit: UtilityFit) -> Predictions:
    return Predictions(predicted=np.frombuffer(bytes(fit.predicted), dtype=PREDICTION_DTYPE).astype(np.int64),
                       rank=np.frombuffer(bytes(fit.rank), dtype=PREDICTION_DTYPE).astype(np.int64))


def utility_chunks_finish(evaluation: UtilityEvaluation) -> None:
    """Every chunk is done (core.chunks, under the evaluation's row lock: nothing here may write the row through
    another connection, as a ProgressRecorder in a transaction does): compute the result from the stored fits and
    finish the evaluation; the release's dataset card is refreshed after the commit. A failure fails the evaluation
    (an exception here would leave it running with no chunk left to finish it)."""
    evaluation = UtilityEvaluation.objects.select_related("release", "evaluation_set").get(pk=evaluation.pk)
    try:
        with transaction.atomic():  # a savepoint: a failed read leaves the evaluation's row writable
            run = evaluation_run(evaluation)
            fits = list(evaluation.fits.order_by("index"))
            if [(fit.index, fit.training_sha256) for fit in fits] != [
                    (index, run.training_sha256(index)) for index in range(run.fit_count)]:
                raise RunChanged(_("The stored fits are not those of this run: run the evaluation again."))
            result = utility_result(run, [fit_predictions(fit) for fit in fits], timings={
                "overlap_s": evaluation.prepared["overlap_s"],
                "features_s": sum(fit.features_seconds for fit in fits),
                "fits_s": sum(fit.fit_seconds for fit in fits)})
    except RunChanged as error:
        evaluation.mark_finished(JobStatus.FAILED, error=str(error), step="")
        return
    except Exception as error:
        logger.exception("utility evaluation result failed", extra={"job": f"utility#{evaluation.pk}"})
        evaluation.mark_finished(JobStatus.FAILED, error=f"{type(error).__name__}: {error}", step="")
        return
    evaluation.mark_finished(JobStatus.DONE, step="", result=result.as_json(), overlap=result.overlap,
                             progress_done=run.fit_count, progress_total=run.fit_count)
    with _runs_lock:
        for key in [key for key in _runs if key[0] == evaluation.pk]:
            del _runs[key]
    if evaluation.release is not None:  # the release's dataset card now shows this evaluation
        release = evaluation.release
        transaction.on_commit(lambda: release_card_refresh(release), robust=True)
