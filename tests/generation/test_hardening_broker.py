"""Issue 11 (hardening), item 7 for generation jobs: a job launched or resumed while the broker is down answers 503
and leaves nothing "queued" (the issue's scans, release exports and uploads are covered in tests/medsyn_site/core/
test_jobs.py, tests/review/curation/test_api.py and tests/review/releases/test_api.py). A broker that is down is a
closed port on 127.0.0.1."""

from __future__ import annotations

import pytest
from django.urls import reverse

from generation.jobs import PlanRequest, do_cancel_job, do_create_job
from generation.models import GenerationJob, ModelConfig
from generation.services import prompt_templates_ensure
from medsyn_site.core.models import AuditEvent, AuditRecord, JobStatus
from medsyn_site.stack import free_port

pytestmark = pytest.mark.django_db

PLAN = {"categories": ["J06", "I10"], "budget": 4, "allocation": "uniform", "symptom_mode": "uniform",
        "variant": "symptoms_example", "language": "ru", "seed": 5, "min_words": 30}


@pytest.fixture(autouse=True)
def prompt_templates(db):
    prompt_templates_ensure()


@pytest.fixture
def api_config(db) -> ModelConfig:
    return ModelConfig.objects.create(name="fake-api", backend=ModelConfig.Backend.OPENAI, api_model="gpt-test",
                                      base_url="http://127.0.0.1:9/v1", batch_size=2)


@pytest.fixture
def broker_down(settings) -> None:
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/1"


def test_a_job_launched_while_the_broker_is_down_is_a_503_and_leaves_no_job(client, make_user, tiny_graph,
                                                                              real_notes, api_config, broker_down):
    client.force_login(make_user("researcher"))
    api = client.post("/api/generation/jobs/", {**PLAN, "model_config": "fake-api"}, content_type="application/json")
    assert api.status_code == 503 and "broker" in api.json()["detail"].lower(), api.content[:300]
    form = {**PLAN, "categories": "J06, I10", "counts": "", "model_config": api_config.pk, "action": "launch"}
    page = client.post(reverse("generation:new"), form)
    assert page.status_code == 503 and 'data-component="broker"' in page.content.decode()
    assert not GenerationJob.objects.exists()
    assert not AuditRecord.objects.filter(action=AuditEvent.CREATE_GENERATION_JOB).exists()


def test_a_job_resumed_while_the_broker_is_down_is_a_503_and_stays_as_it_was(client, make_user, tiny_graph,
                                                                               real_notes, api_config, settings):
    job = do_create_job(request=PlanRequest(categories=["J06", "I10"], budget=4, allocation="uniform", seed=5),
                        model_config=api_config, actor=None, enqueue=False)
    do_cancel_job(job=job, actor=None)
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.resumable
    settings.CELERY_BROKER_URL = f"redis://127.0.0.1:{free_port()}/1"
    client.force_login(make_user("researcher"))
    api = client.post(f"/api/generation/jobs/{job.pk}/resume/")
    assert api.status_code == 503 and "broker" in api.json()["detail"].lower(), api.content[:300]
    page = client.post(reverse("generation:job_resume", kwargs={"pk": job.pk}))
    assert page.status_code == 503 and 'data-component="broker"' in page.content.decode()
    job.refresh_from_db()
    assert job.status == JobStatus.CANCELLED and job.finished_at is not None
    assert not AuditRecord.objects.filter(action=AuditEvent.RESUME_GENERATION_JOB).exists()
