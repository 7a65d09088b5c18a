"""Live progress of generation on the local backend: a batch reports its progress while it runs, hands each row over
as soon as it ends, shows "loading the model" while the model loads, and stops at the next check when cancelled,
leaving its unfinished items pending with nothing written for them; resume then finishes the job."""

from __future__ import annotations

import pytest

from generation import jobs
from generation.backends import local_backend
from generation.backends.base import GenerationCancelled, GenerationRequest, GenerationWatch
from generation.backends.local_backend import LocalBackend
from generation.jobs import PlanRequest, do_cancel_job, do_create_job, do_resume_job, job_execute
from generation.models import GenerationItem, GenerationJob, ModelConfig, Note
from generation.services import prompt_templates_ensure
from medsyn_site.core.models import JobActivity
from medsyn_site.core.progress import ProgressRecorder


@pytest.fixture(autouse=True)
def fresh_model_cache():
    local_backend.loaded_models_clear()
    yield
    local_backend.loaded_models_clear()


class RecordingWatch(GenerationWatch):
    """Records what a generate() call tells its watch, in order; raises GenerationCancelled when cancel_when says."""

    def __init__(self, cancel_when=lambda done: False) -> None:
        self.events: list[tuple] = []
        self.cancel_when = cancel_when

    def progress(self, done: float) -> None:
        self.events.append(("progress", done))
        if self.cancel_when(done):
            raise GenerationCancelled

    def result(self, result) -> None:
        self.events.append(("result", result.key))


def scripted_requests() -> list[GenerationRequest]:
    """Two completion prompts for the scripted model: after ":" it writes "на" and a blank line (its note ends at the
    third token); after "!" it knows no next token and writes on to max_new_tokens."""
    return [GenerationRequest(key="ends", system="", user="Жалобы пациента:"),
            GenerationRequest(key="goes-on", system="", user="Жалобы пациента!")]


def scripted_backend(model_dir) -> LocalBackend:
    return LocalBackend(ModelConfig(name="scripted", backend="local", model_path=str(model_dir),
                                    prompt_format="completion", temperature=0.0, max_new_tokens=12, batch_size=2))


def test_a_batch_reports_its_progress_and_hands_each_row_over_as_it_ends(scripted_model_dir):
    watch = RecordingWatch()
    results = scripted_backend(scripted_model_dir).generate(scripted_requests(), watch=watch)

    assert [(r.key, r.text, r.completion_tokens) for r in results] == [("ends", "На", 3), ("goes-on", "", 12)]
    progress = [done for kind, done in watch.events if kind == "progress"]
    # one batch of two rows, twelve steps: each step moves it by 2/12 until the first row ends at step 3 (it then
    # counts 1), then by 1/12; the last report is the whole batch
    assert progress[:3] == pytest.approx([2 / 12, 4 / 12, 1 + 3 / 12])
    assert progress == sorted(progress) and progress[-1] == 2
    assert all(0 < done < 2 for done in progress[:-2])
    # the row that ended was handed over at its third step, before the other row's remaining nine
    assert watch.events.index(("result", "ends")) == 2
    assert watch.events[-2:] == [("result", "goes-on"), ("progress", 2)]


def test_a_cancel_from_the_watch_stops_the_batch_at_the_next_step(scripted_model_dir):
    watch = RecordingWatch(cancel_when=lambda done: done > 1.3)
    with pytest.raises(GenerationCancelled):
        scripted_backend(scripted_model_dir).generate(scripted_requests(), watch=watch)
    # the first row ended and was handed over; the step after the cancel ended the batch: no other report, no result
    assert watch.events == [("progress", pytest.approx(2 / 12)), ("progress", pytest.approx(4 / 12)),
                            ("result", "ends"), ("progress", pytest.approx(1 + 3 / 12)),
                            ("progress", pytest.approx(1 + 4 / 12))]


@pytest.fixture
def tiny_job(db, tiny_graph, real_notes, tiny_model_config):
    """A job of six items on the tiny local model (batches of four: 4 + 2), not sent to a worker."""
    prompt_templates_ensure()
    request = PlanRequest(categories=["J06", "I10"], budget=6, allocation="uniform", seed=17)
    return do_create_job(request=request, model_config=tiny_model_config, actor=None, enqueue=False)


@pytest.fixture
def written(monkeypatch):
    """Every in-flight progress the job writes: (progress written, the job's items with an outcome then, the
    activity's progress as stored). A check after every step (no wait of a second between writes)."""
    monkeypatch.setattr(jobs, "PROGRESS_INTERVAL_SECONDS", 0)
    records: list[tuple[float, int, float | None]] = []
    in_flight = ProgressRecorder.in_flight

    def recorded(recorder, done, total):
        wrote = in_flight(recorder, done, total)
        if wrote:
            job = GenerationJob.objects.get(pk=recorder.pk)
            activity = JobActivity.objects.get(job_model="generation.generationjob", job_id=recorder.pk)
            records.append((done, job.progress_done, activity.done))
        return wrote

    monkeypatch.setattr(ProgressRecorder, "in_flight", recorded)
    return records


def test_a_local_batch_writes_its_progress_before_it_ends(tiny_job, written):
    job_execute(tiny_job.pk)
    tiny_job.refresh_from_db()
    assert tiny_job.status == "done" and tiny_job.progress_done == 6

    assert all(stored == done for done, _outcome, stored in written)  # what was written is what the page reads
    first_batch = [done for done, outcomes, _stored in written if outcomes < 4]  # before its four items were in
    assert any(0 < done < 4 and done != int(done) for done in first_batch), written  # part-way through its tokens
    values = [done for done, _outcomes, _stored in written]
    assert values == sorted(values) and values[0] == 0


def test_the_model_loads_in_the_loading_phase(tiny_job, monkeypatch):
    phases = []
    model_load = local_backend.model_load

    def load(key):
        phases.append(JobActivity.objects.get(job_model="generation.generationjob", job_id=tiny_job.pk).phase)
        return model_load(key)

    monkeypatch.setattr(local_backend, "model_load", load)
    job_execute(tiny_job.pk)
    assert phases == ["loading_model"]
    assert JobActivity.objects.get(job_model="generation.generationjob", job_id=tiny_job.pk).phase == ""


def test_a_cancel_stops_the_running_batch_at_the_next_check_and_resume_finishes_the_job(tiny_job, written,
                                                                                         monkeypatch):
    checks = []
    progress = jobs.ItemsWatch.progress

    def cancel_part_way(watch, done):
        if not checks and 0 < done < 4:  # the first batch, part-way through its tokens: the user presses Cancel
            do_cancel_job(job=watch.job, actor=None)
            checks.append("cancelled")
            return
        if checks:
            checks.append(done)
        progress(watch, done)

    monkeypatch.setattr(jobs.ItemsWatch, "progress", cancel_part_way)
    job_execute(tiny_job.pk)
    job = GenerationJob.objects.get(pk=tiny_job.pk)
    assert job.status == "cancelled" and len(checks) == 2  # the next check after the cancel stopped the batch

    items = list(job.items.order_by("index"))
    done = [item for item in items if item.status == GenerationItem.Status.DONE]
    pending = [item for item in items if item.status == GenerationItem.Status.PENDING]
    assert len(pending) >= 2 + 1  # the second batch never ran, and the first did not finish
    assert all(item.note_id is None and item.attempts == 0 for item in pending)
    notes = Note.objects.filter(metadata__job_id=job.pk)
    assert sorted(notes.values_list("metadata__item_index", flat=True)) == [item.index for item in done]
    assert job.ok == len(done) and job.progress_done == len(done) + job.skipped

    do_resume_job(job=job, actor=None)
    job_execute(job.pk)
    job.refresh_from_db()
    assert job.status == "done" and job.progress_done == 6
    assert not job.items.filter(status=GenerationItem.Status.PENDING).exists()
    finished = job.items.filter(status=GenerationItem.Status.DONE)
    assert notes.count() == finished.count() == job.ok  # one note per item, none written twice
    assert set(notes.values_list("id", flat=True)) == set(finished.values_list("note_id", flat=True))
