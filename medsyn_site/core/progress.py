"""Progress of background jobs: one recorder that jobs call, one view of where a job stands (phase, counts, rate,
ETA) that one template partial renders, one response for htmx polling, one command bar.

ProgressRecorder writes outside the caller's transaction: an all-or-nothing import runs in one transaction, and
a write of its progress inside it would stay invisible to the page until the very end. Inside an atomic block
it writes through a second, autocommit database connection of its own; outside one, through Django's.

Besides progress_done / progress_total on the job row it keeps the job's JobActivity: the phase of the run ("loading
the model"), the progress with the fraction of the units under way (in_flight: a batch part-way through its tokens),
and samples of (time, progress) over the last RATE_WINDOW_SECONDS, from which job_progress computes the rate of the
recent past and the time left. The rate and ETA formulas are pure functions (samples_add, samples_rate, eta_seconds).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.core.management.base import BaseCommand
from django.db import connections, models
from django.db.models.constants import OnConflict
from django.db.models.sql import InsertQuery, UpdateQuery
from django.http import HttpResponse
from django.utils import timezone
from django.utils.formats import number_format
from django.utils.translation import gettext as _
from django_htmx.http import HttpResponseStopPolling
from tqdm import tqdm

from .models import JobActivity, JobPhase, JobStatus

Progress = Callable[[int, int], None]  # (units done, units total)

RATE_WINDOW_SECONDS = 60.0  # the rate is that of the last minute of samples (and the sample just before it)
MAX_SAMPLES = 120  # a recorder writes at most twice a second by default: a minute of samples
HEARTBEAT_SECONDS = 30.0  # a recorder called this long after its last write writes even within the same percent


# --- The rate and the time left (pure) -----------------------------------------------------------------------------

Sample = list[float]  # [unix time, progress]


def samples_add(samples: list[Sample], at: float, done: float, *, window: float = RATE_WINDOW_SECONDS) -> list[Sample]:
    """samples with [at, done] appended, keeping those of the last `window` seconds and the newest one before them
    (so that the rate spans the window even when samples are sparse), at most MAX_SAMPLES."""
    samples = [*samples, [at, done]]
    recent = [index for index, (when, _done) in enumerate(samples) if when >= at - window]
    first = max(0, recent[0] - 1) if recent else len(samples) - 1
    return samples[first:][-MAX_SAMPLES:]


def samples_rate(samples: list[Sample]) -> float | None:
    """Units per second between the oldest and the newest sample; None with fewer than two samples or no time
    between them."""
    if len(samples) < 2:
        return None
    (first_at, first_done), (last_at, last_done) = samples[0], samples[-1]
    if last_at <= first_at:
        return None
    return max(0.0, (last_done - first_done) / (last_at - first_at))


def eta_seconds(*, remaining: float, rate: float | None, since_last: float = 0.0) -> float | None:
    """Seconds left for `remaining` units at `rate`, counted from the last sample, `since_last` seconds ago (so the
    estimate counts down between samples, never below zero); None when nothing is known (no rate, or none left)."""
    if rate is None or rate <= 0 or remaining <= 0:
        return None
    return max(0.0, remaining / rate - max(0.0, since_last))


# --- Texts -----------------------------------------------------------------------------------------------------------

# Per unit: the "N of M" text and the rate text, one literal msgid each for the catalogue (the Russian one says
# "записей: 3 из 6", so no plural forms are needed).
PROGRESS_UNITS: dict[str, tuple[Callable[[], str], Callable[[], str]]] = {
    "items": (lambda: _("%(done)s of %(total)s items"), lambda: _("%(rate)s items/s")),
    "notes": (lambda: _("%(done)s of %(total)s notes"), lambda: _("%(rate)s notes/s")),
    "rows": (lambda: _("%(done)s of %(total)s rows"), lambda: _("%(rate)s rows/s")),
    "steps": (lambda: _("step %(done)s of %(total)s"), lambda: _("%(rate)s steps/s")),
    "fits": (lambda: _("%(done)s of %(total)s fits"), lambda: _("%(rate)s fits/s")),
    "graph_rows": (lambda: _("%(done)s of %(total)s nodes and edges written"),
                   lambda: _("%(rate)s nodes and edges/s")),
}


def duration_text(seconds: float | None) -> str:
    """A duration for people: "1 h 05 min", "3 min 20 s", "7 s"."""
    if seconds is None:
        return ""
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return _("%(h)d h %(m)02d min") % {"h": hours, "m": minutes}
    if minutes:
        return _("%(m)d min %(s)02d s") % {"m": minutes, "s": secs}
    return _("%(s)d s") % {"s": secs}


def rate_text(rate: float, unit: str) -> str:
    """A rate with two significant digits (at most three decimals), in the interface language's number format."""
    decimals = 0 if rate <= 0 else min(3, max(0, 1 - math.floor(math.log10(rate))))
    value = number_format(round(rate, decimals), decimal_pos=decimals)
    return PROGRESS_UNITS[unit][1]() % {"rate": value}


# --- Where a job stands --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JobProgress:
    """What the progress partial shows of one job. phase: a JobPhase value while the job is unfinished, its status
    once finished; done: units with an outcome (the job's progress_done); current: done with the fraction of the
    units under way; rate: units per second (of the last minute while it runs, the whole run's average once
    finished); eta: seconds left."""

    status: str
    status_label: str
    phase: str
    done: int
    total: int
    current: float
    rate: float | None
    eta: float | None
    unit: str = "items"

    @property
    def finished(self) -> bool:
        return self.status in (JobStatus.DONE, JobStatus.FAILED, JobStatus.CANCELLED)

    @property
    def fraction(self) -> float:
        if self.total:
            return min(1.0, self.current / self.total)
        return 1.0 if self.status == JobStatus.DONE else 0.0

    @property
    def percent(self) -> int:
        """The whole percent (aria-valuenow); the bar's width is width_percent."""
        return min(100, round(100 * self.fraction))

    @property
    def width_percent(self) -> str:
        return f"{100 * self.fraction:.1f}"

    @property
    def phase_label(self) -> str:
        """The phase when it says more than the status: loading the model, finishing."""
        if self.phase in (JobPhase.LOADING_MODEL, JobPhase.FINISHING):
            return str(JobPhase(self.phase).label)
        return ""

    @property
    def count_text(self) -> str:
        if not self.total:
            return ""
        return PROGRESS_UNITS[self.unit][0]() % {"done": self.done, "total": self.total}

    @property
    def rate_text(self) -> str:
        return "" if self.rate is None else rate_text(self.rate, self.unit)

    @property
    def eta_text(self) -> str:
        return "" if self.eta is None else _("about %(duration)s left") % {"duration": duration_text(self.eta)}


def job_activity(job: models.Model) -> JobActivity | None:
    return JobActivity.objects.filter(job_model=job._meta.label_lower, job_id=job.pk).first()


def job_progress(job: models.Model, *, unit: str | None = None, now: float | None = None,
                 activity: JobActivity | None = None) -> JobProgress:
    """Where a job (any BackgroundJob) stands, from its row and, while it runs, its JobActivity (read here unless
    given). unit: a key of PROGRESS_UNITS (default: the job model's progress_unit). now: unix time (tests)."""
    unit = unit or getattr(job, "progress_unit", "items")
    now = time.time() if now is None else now
    done, total = job.progress_done, job.progress_total
    base = {"status": job.status, "status_label": str(job.get_status_display()), "done": done, "total": total,
            "unit": unit}
    if job.status != JobStatus.RUNNING:
        rate = None
        if job.finished and job.started_at and job.finished_at and done:
            seconds = (job.finished_at - job.started_at).total_seconds()
            rate = done / seconds if seconds > 0 else None
        phase = JobPhase.QUEUED if job.status == JobStatus.QUEUED else job.status
        return JobProgress(**base, phase=phase, current=done, rate=rate, eta=None)
    if activity is None:
        activity = job_activity(job)
    current = float(done)
    if activity is not None and activity.done is not None:
        current = max(current, activity.done)
    if total:
        current = min(current, float(total))
    phase = (activity.phase if activity is not None else "") or JobPhase.RUNNING
    if phase == JobPhase.RUNNING and total and done >= total:
        phase = JobPhase.FINISHING  # every unit counted: what is left is writing the outcome
    samples = activity.samples if activity is not None else []
    rate = samples_rate(samples)
    since_last = now - samples[-1][0] if samples else 0.0
    if rate is None and job.started_at and current:  # too few samples: the average of the run so far
        last = job.updated_at or job.started_at
        seconds = (last - job.started_at).total_seconds()
        rate = current / seconds if seconds > 0 else None
        since_last = now - last.timestamp()
    eta = None if phase == JobPhase.LOADING_MODEL else eta_seconds(remaining=total - current, rate=rate,
                                                                  since_last=since_last)
    return JobProgress(**base, phase=phase, current=current, rate=rate, eta=eta)


# --- Writing it ----------------------------------------------------------------------------------------------------

class ProgressRecorder:
    """Call it with (done, total); it stores progress_done / progress_total on the job row, at most once per
    percent and per min_interval seconds (always the last call, and at least every HEARTBEAT_SECONDS), and passes
    every call on to `also` (a command's progress bar, say). Each write also adds a sample to the job's activity
    (rate and ETA).

    in_flight(done, total) records progress with fractions of units under way, for the bar, the rate and the ETA
    only (the job's own writes move progress_done); phase(...) names what the run is doing meanwhile. shared=True: one
    of several recorders of the same job at once (its chunks on several workers, core.chunks): each write adds its
    sample to those the others stored, so the rate is the whole job's."""

    def __init__(self, job: models.Model, *, also: Progress | None = None, min_interval: float = 0.5,
                 using: str = "default", clock: Callable[[], float] = time.time, shared: bool = False) -> None:
        self.shared = shared  # one of several recorders of a job (its chunks on several workers): samples are merged
        self.model = type(job)
        self.pk = job.pk
        self.also = also
        self.min_interval = min_interval
        self.using = using
        self.clock = clock
        self.samples: list[Sample] = []  # this run's: the first write replaces a previous run's
        self.current_phase = ""
        self._last_percent = -1
        self._last_write = 0.0
        self._side = None  # a raw autocommit connection, opened the first time a write happens in a transaction

    def __call__(self, done: int, total: int) -> None:
        if self.also is not None:
            self.also(done, total)
        if self._due(done, total):
            self.write(progress_done=done, progress_total=total)
            self._sample(done)

    def in_flight(self, done: float, total: int) -> bool:
        """Progress counting the fraction of the units under way (done need not be whole), as often as __call__
        writes: to the activity, and the job row's updated_at only (a job whose batch moves is alive; its own writes
        move progress_done). True when it wrote."""
        if not self._due(done, total):
            return False
        self.write()
        self._sample(done)
        return True

    def phase_set(self, phase: str) -> None:
        """Name the phase of the run now (a JobPhase value; "" or RUNNING: simply running), written at once."""
        self.current_phase = "" if phase == JobPhase.RUNNING else phase
        if self.shared:
            self.samples = self._samples_stored()
        self.activity_write(self.samples[-1][1] if self.samples else None)

    @contextmanager
    def phase(self, phase: str) -> Iterator[None]:
        """The phase for the time of a block (loading the model), running again after it."""
        self.phase_set(phase)
        try:
            yield
        finally:
            self.phase_set(JobPhase.RUNNING)

    def _due(self, done: float, total: int) -> bool:
        """At most once per percent and per min_interval seconds, always the last call, and at least every
        HEARTBEAT_SECONDS (a long job's percent moves slowly: its samples and its sign of life must not)."""
        percent = int(100 * done / total) if total else 0
        now = time.monotonic()
        final = total and done >= total
        beat = now - self._last_write >= HEARTBEAT_SECONDS
        if (percent == self._last_percent and not beat) or (not final and now - self._last_write < self.min_interval):
            return False
        self._last_percent, self._last_write = percent, now
        return True

    def _sample(self, done: float) -> None:
        if self.shared:
            self.samples = self._samples_stored()
        self.samples = samples_add(self.samples, self.clock(), float(done))
        self.activity_write(float(done))

    def _samples_stored(self) -> list[Sample]:
        """The job's samples as the other recorders of a shared job left them (time-ordered)."""
        stored = JobActivity.objects.using(self.using).filter(
            job_model=self.model._meta.label_lower, job_id=self.pk).values_list("samples", flat=True).first()
        return sorted(stored or [])

    def write(self, **fields: object) -> None:
        """Update fields of the job row now, visible to other connections whatever transaction is open (and its
        updated_at: a job that writes progress is alive)."""
        fields.setdefault("updated_at", timezone.now())
        connection = connections[self.using]
        if not connection.in_atomic_block:
            self.model.objects.using(self.using).filter(pk=self.pk).update(**fields)
            return
        query = self.model.objects.using(self.using).filter(pk=self.pk).query.chain(UpdateQuery)
        query.add_update_values(fields)
        self._execute([query.get_compiler(self.using).as_sql()])

    def activity_write(self, done: float | None) -> None:
        """Insert or update the job's activity (phase, progress, samples), like write() outside any transaction."""
        activity = JobActivity(job_model=self.model._meta.label_lower, job_id=self.pk, phase=self.current_phase,
                               done=done, samples=self.samples)
        meta = JobActivity._meta
        fields = [field for field in meta.concrete_fields if not field.primary_key]
        query = InsertQuery(JobActivity, on_conflict=OnConflict.UPDATE,
                            update_fields=[meta.get_field(name) for name in ("phase", "done", "samples", "updated_at")],
                            unique_fields=[meta.get_field("job_model"), meta.get_field("job_id")])
        query.insert_values(fields, [activity])
        self._execute(query.get_compiler(self.using).as_sql())

    def _execute(self, statements: list[tuple[str, tuple]]) -> None:
        connection = connections[self.using]
        if not connection.in_atomic_block:
            with connection.cursor() as cursor:
                for sql, params in statements:
                    cursor.execute(sql, params)
            return
        if self._side is None:
            self._side = connection.get_new_connection(connection.get_connection_params())
            self._side.autocommit = True
        with self._side.cursor() as cursor:
            for sql, params in statements:
                cursor.execute(sql, params)

    def close(self) -> None:
        if self._side is not None:
            self._side.close()
            self._side = None

    def __enter__(self) -> ProgressRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def poll_response(response: HttpResponse, *, finished: bool) -> HttpResponse:
    """An htmx polling fragment: the same content, with "stop polling" (286) once the job has finished."""
    return HttpResponseStopPolling(response.content) if finished else response


@contextmanager
def command_progress_bar(command: BaseCommand, desc: str, unit: str = "note") -> Iterator[Progress]:
    """A tqdm bar on a management command's stderr, fed by (done, total) progress callbacks.

    It writes to the stream under Django's OutputWrapper, which would end every redraw with a newline."""
    stream = getattr(command.stderr, "_out", command.stderr)
    with tqdm(total=0, unit=unit, file=stream, disable=None, desc=desc) as bar:

        def progress(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
                bar.refresh()
            bar.update(done - bar.n)

        yield progress
