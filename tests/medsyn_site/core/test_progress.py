"""The one progress component of background jobs: the rate of the recent past and the time left (checked against
sums done by hand), the phase, the job's activity written outside the caller's transaction, and the partial."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest
from django.db import connection, transaction
from django.template import Context, Template
from django.utils import timezone

from graph.models import ImportJob
from medsyn_site.core import progress as progress_module
from medsyn_site.core.models import JobActivity, JobPhase
from medsyn_site.core.progress import (
    ProgressRecorder,
    duration_text,
    eta_seconds,
    job_progress,
    rate_text,
    samples_add,
    samples_rate,
)


def test_samples_keep_the_last_minute_and_the_one_before_it():
    samples = []
    for second in range(0, 201, 10):  # one unit every ten seconds
        samples = samples_add(samples, float(second), second / 10)
    # at 200 s the window reaches back to 140 s; 130 s is kept as the sample just before it
    assert [at for at, _done in samples] == [130, 140, 150, 160, 170, 180, 190, 200]
    assert samples_rate(samples) == pytest.approx((20 - 13) / (200 - 130))  # 0.1 unit/s

    sparse = samples_add(samples_add([], 0.0, 0.0), 500.0, 4.0)  # two samples further apart than the window
    assert sparse == [[0.0, 0.0], [500.0, 4.0]] and samples_rate(sparse) == pytest.approx(4 / 500)


def test_the_rate_is_that_of_the_window_not_of_the_whole_run():
    samples = []
    for at, done in ((0, 0), (10, 1), (20, 2), (100, 2.5), (110, 4.5), (120, 6.5), (130, 8.5), (140, 10.5)):
        samples = samples_add(samples, float(at), done)
    # window from 80 s: the samples of 100-140 s and the one of 20 s before them
    assert samples[0] == [20.0, 2] and samples_rate(samples) == pytest.approx((10.5 - 2) / (140 - 20))


def test_rate_and_eta_by_hand():
    samples = [[100.0, 0.0], [110.0, 2.0], [130.0, 6.0]]
    rate = samples_rate(samples)
    assert rate == pytest.approx(6 / 30)  # 0.2 items/s
    # 10 items in all: 4 left at 0.2/s are 20 s from the last sample; 5 s later, 15 s are left
    assert eta_seconds(remaining=10 - 6, rate=rate, since_last=0) == pytest.approx(20)
    assert eta_seconds(remaining=10 - 6, rate=rate, since_last=5) == pytest.approx(15)
    assert eta_seconds(remaining=4, rate=rate, since_last=60) == 0  # late: never below zero
    assert eta_seconds(remaining=0, rate=rate) is None and eta_seconds(remaining=4, rate=None) is None
    assert eta_seconds(remaining=4, rate=0.0) is None
    assert samples_rate([[1.0, 3.0]]) is None and samples_rate([[1.0, 3.0], [1.0, 4.0]]) is None


def test_texts_for_people():
    assert duration_text(7) == "7 s" and duration_text(200) == "3 min 20 s" and duration_text(3900) == "1 h 05 min"
    assert rate_text(0.025, "items") == "0.025 items/s"
    assert rate_text(0.2, "notes") == "0.20 notes/s"
    assert rate_text(1.234, "rows") == "1.2 rows/s"
    assert rate_text(123.4, "steps") == "123 steps/s"


@pytest.fixture
def job(db):
    return ImportJob.objects.create(original_name="x.jsonl", upload="x.jsonl", progress_total=10)


def _running(job: ImportJob, *, done: int, started_ago: float, updated_ago: float, now) -> ImportJob:
    ImportJob.objects.filter(pk=job.pk).update(status="running", progress_done=done,
                                               started_at=now - timedelta(seconds=started_ago),
                                               updated_at=now - timedelta(seconds=updated_ago))
    job.refresh_from_db()
    return job


def test_a_queued_job_has_a_phase_and_no_rate(job):
    progress = job_progress(job)
    assert (progress.phase, progress.status_label, progress.rate, progress.eta) == ("queued", "Queued", None, None)
    assert (progress.count_text, progress.percent) == ("0 of 10 items", 0)


def test_a_running_job_from_its_activity_samples(job):
    now = timezone.now()
    job = _running(job, done=6, started_ago=60, updated_ago=0, now=now)
    activity = JobActivity(job_model="graph.importjob", job_id=job.pk, done=6.5,
                           samples=[[100.0, 0.5], [110.0, 2.5], [130.0, 6.5]])
    progress = job_progress(job, activity=activity, now=135.0)
    assert progress.phase == JobPhase.RUNNING and progress.current == 6.5
    assert progress.rate == pytest.approx(0.2)  # (6.5 - 0.5) / 30 s
    assert progress.eta == pytest.approx(3.5 / 0.2 - 5)  # 3.5 left at 0.2/s from 130 s, now 135 s
    assert (progress.percent, progress.width_percent, progress.count_text) == (65, "65.0", "6 of 10 items")
    assert progress.rate_text == "0.20 items/s" and progress.eta_text == "about 12 s left"

    loading = JobActivity(job_model="graph.importjob", job_id=job.pk, phase=JobPhase.LOADING_MODEL, samples=[])
    progress = job_progress(job, activity=loading, now=135.0)
    assert (progress.phase, progress.phase_label, progress.eta) == ("loading_model", "Loading the model", None)


def test_without_samples_the_rate_is_the_run_s_average_and_every_unit_counted_is_finishing(job):
    now = timezone.now()
    job = _running(job, done=4, started_ago=20, updated_ago=0, now=now)
    progress = job_progress(job, activity=JobActivity(samples=[]), now=now.timestamp())
    assert progress.rate == pytest.approx(4 / 20) and progress.eta == pytest.approx(6 / 0.2)

    job = _running(job, done=10, started_ago=20, updated_ago=0, now=now)
    progress = job_progress(job, activity=JobActivity(samples=[]), now=now.timestamp())
    assert (progress.phase, progress.phase_label, progress.eta) == ("finishing", "Finishing", None)


def test_a_finished_job_shows_its_average_rate(job):
    started = timezone.now() - timedelta(seconds=40)
    ImportJob.objects.filter(pk=job.pk).update(status="done", progress_done=10, started_at=started,
                                               finished_at=started + timedelta(seconds=40))
    job.refresh_from_db()
    progress = job_progress(job)
    assert (progress.phase, progress.status_label, progress.percent) == ("done", "Done", 100)
    assert progress.rate == pytest.approx(0.25) and progress.eta is None and progress.phase_label == ""


@pytest.mark.django_db(transaction=True)
def test_the_recorder_writes_phase_fractions_and_samples_to_the_activity(job):
    clock = iter([100.0, 110.0, 130.0]).__next__
    ImportJob.objects.filter(pk=job.pk).update(status="running", started_at=timezone.now())
    recorder = ProgressRecorder(job, min_interval=0, clock=clock)
    recorder.phase_set(JobPhase.LOADING_MODEL)
    activity = JobActivity.objects.get(job_model="graph.importjob", job_id=job.pk)
    assert (activity.phase, activity.done, activity.samples) == ("loading_model", None, [])
    with recorder.phase(JobPhase.FINISHING):
        assert JobActivity.objects.get(pk=activity.pk).phase == "finishing"
    assert recorder.in_flight(0.5, 10) and recorder.in_flight(2.5, 10)
    assert not recorder.in_flight(2.51, 10)  # the same percent: not written
    recorder(6, 10)  # whole units: the job row too
    activity.refresh_from_db()
    job.refresh_from_db()
    assert (activity.phase, activity.done, job.progress_done) == ("", 6.0, 6)
    assert activity.samples == [[100.0, 0.5], [110.0, 2.5], [130.0, 6.0]]
    assert job_progress(job, now=130.0).rate == pytest.approx(5.5 / 30)


@pytest.mark.django_db(transaction=True)
def test_a_long_job_within_one_percent_still_writes_a_sample_and_a_sign_of_life(job, monkeypatch):
    ImportJob.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(hours=1))
    recorder = ProgressRecorder(job, min_interval=0, clock=iter([1.0, 2.0, 3.0]).__next__)
    assert recorder.in_flight(2.0, 1000) and not recorder.in_flight(2.5, 1000)  # the same percent
    monkeypatch.setattr(progress_module, "HEARTBEAT_SECONDS", 0)  # as if half a minute had passed
    assert recorder.in_flight(3.0, 1000)
    assert JobActivity.objects.get(job_id=job.pk, job_model="graph.importjob").samples == [[1.0, 2.0], [2.0, 3.0]]
    job.refresh_from_db()
    assert timezone.now() - job.updated_at < timedelta(minutes=1)


@pytest.mark.django_db(transaction=True)
def test_the_activity_written_inside_a_transaction_is_visible_to_another_connection_at_once():
    job = ImportJob.objects.create(original_name="x.jsonl", upload="x.jsonl")
    params = connection.get_connection_params()
    with transaction.atomic(), ProgressRecorder(job, min_interval=0) as progress:
        progress.phase_set(JobPhase.LOADING_MODEL)
        progress.in_flight(2.5, 10)
        with psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"}) as other:
            row = other.execute(f"SELECT phase, done FROM {JobActivity._meta.db_table} WHERE job_id = %s",
                                [job.pk]).fetchone()
    assert row == ("loading_model", 2.5)


def test_the_partial_shows_status_phase_count_rate_and_eta(job):
    now = timezone.now()
    job = _running(job, done=3, started_ago=30, updated_ago=0, now=now)
    html = Template("{% load job_progress %}{% job_progress job unit='notes' status_testid='scan-state' %}").render(
        Context({"job": job}))
    assert 'data-testid="scan-state">Running</strong>' in html and "3 of 10 notes" in html
    assert 'aria-valuenow="30"' in html and 'data-testid="job-progress"' in html
    assert "0.10 notes/s" in html and 'data-testid="job-eta">about ' in html
