"""Browser: the job page polls a running job and its progress moves before the job ends: queued, loading the model,
part-way through a batch (the bar, the rate, the time left), items recorded, then done."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from generation import jobs
from generation.backends.base import GenerationResult
from generation.jobs import PlanRequest, do_create_job, item_record, job_execute, job_items_build
from generation.models import GenerationItem
from generation.services import prompt_templates_ensure
from medsyn_site.core.models import JobPhase
from medsyn_site.core.progress import ProgressRecorder

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True, serialized_rollback=True)]

NOTE = ("Пациент {key} жалуется на кашель, насморк и боль в горле, лихорадку до тридцати восьми градусов, слабость "
        "и потливость в течение недели.")


class NotesBackend:
    """Answers every request with a distinct note, handing each result to the watch as it goes."""

    def generate(self, requests, watch=None):
        results = [GenerationResult(key=r.key, text=NOTE.format(key=r.key), prompt_tokens=5, completion_tokens=9)
                   for r in requests]
        for done, result in enumerate(results, start=1):
            if watch is not None:
                watch.result(result)
                watch.progress(done)
        return results


def test_the_job_page_shows_progress_moving_before_the_job_ends(tiny_graph, real_notes, tiny_model_config,
                                                                make_user, live_login, live_server, monkeypatch):
    prompt_templates_ensure()
    job = do_create_job(request=PlanRequest(categories=["J06", "I10"], budget=6, allocation="uniform"),
                        model_config=tiny_model_config, actor=None, enqueue=False)
    job_items_build(job)
    page = live_login(make_user("researcher").username)
    page.goto(f"{live_server.url}/generation/jobs/{job.pk}/")
    status, bar = page.locator("[data-testid=job-status]"), page.locator("[data-testid=job-progress]")
    expect(status).to_have_text("Queued")
    expect(page.locator("[data-testid=job-count]")).to_have_text("0 of 6 items")

    assert job.mark_running()
    with ProgressRecorder(job, min_interval=0) as recorder:  # what the worker's run writes, step by step
        recorder.phase_set(JobPhase.LOADING_MODEL)
        expect(page.locator("[data-testid=job-phase]")).to_have_text("Loading the model")
        expect(status).to_have_text("Running")
        recorder.phase_set(JobPhase.RUNNING)
        recorder.in_flight(0, 6)
        recorder.in_flight(1.5, 6)  # the first batch of four, part-way through its tokens
        expect(bar).to_have_attribute("aria-valuenow", "25")
        expect(page.locator("[data-testid=job-phase]")).to_have_count(0)
        expect(page.locator("[data-testid=job-rate]")).to_contain_text("items/s")
        expect(page.locator("[data-testid=job-eta]")).to_contain_text("left")

    config = jobs.model_config_for_job(job)
    for item in job.items.order_by("index")[:3]:  # three notes written, the job still running
        item_record(job, config, item.pk, GenerationResult(key=str(item.pk), text=NOTE.format(key=item.pk)),
                    jobs.check_thresholds_for(job))
    expect(page.locator("[data-testid=job-count]")).to_have_text("3 of 6 items")
    expect(bar).to_have_attribute("aria-valuenow", "50")
    expect(status).to_have_text("Running")

    monkeypatch.setattr(jobs, "backend_for", lambda config: NotesBackend())
    job_execute(job.pk)  # the worker's run goes on with the three items left
    expect(status).to_have_text("Done")
    expect(bar).to_have_attribute("aria-valuenow", "100")
    expect(page.locator("[data-testid=job-count]")).to_have_text("6 of 6 items")
    assert job.items.filter(status=GenerationItem.Status.DONE).count() == 6
