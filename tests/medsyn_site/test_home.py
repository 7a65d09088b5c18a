"""The home page is a to-do list by role: studies to rate, notes to curate, running jobs, latest releases."""

from __future__ import annotations

import pytest
from django.urls import reverse

from generation.models import GenerationJob
from medsyn_site.core.models import JobStatus
from review.assessment.services import do_build_study_pool, do_create_study, do_open_study
from review.curation.services import do_transition_note
from tests.generation.factories import NoteFactory
from tests.review.conftest import CURATION_SYNTHETIC, REAL_TEXTS, synthetic_make

pytestmark = pytest.mark.django_db


@pytest.fixture
def notes(db):
    for n, text in enumerate(REAL_TEXTS * 2):
        NoteFactory(text=f"{text} Визит {n}.", icd_code="J06")
        NoteFactory(synthetic=True, text=f"{text} Синтетика {n}.", icd_code="J06",
                    metadata={"generation_model": "gpt-4", "prompt_variant": "symptoms", "job_id": 1})


def test_a_physician_sees_the_studies_open_for_them_with_their_progress(client, make_user, notes):
    curator, physician = make_user("curator"), make_user("physician")
    client.force_login(physician)
    page = client.get(reverse("home")).content.decode()
    assert 'data-testid="todo-rating"' in page and "No study is open for you now" in page
    assert 'data-testid="todo-curation"' not in page and 'data-testid="todo-jobs"' not in page
    study = do_create_study(actor=curator, name="Кашель и насморк", overlap_k=1)
    do_build_study_pool(actor=curator, study=study, n_per_origin=2, seed=1)
    do_open_study(actor=curator, study=study)
    page = client.get(reverse("home")).content.decode()
    assert "Кашель и насморк" in page and reverse("assessment:rate_study", args=[study.pk]) in page
    assert "0 of 4 rated" in page


def test_a_curator_sees_how_many_notes_wait_in_each_state(client, make_user):
    curator = make_user("curator")
    notes = [synthetic_make(text, "J06.9") for text in CURATION_SYNTHETIC[:3]]
    do_transition_note(actor=curator, note=notes[0], action="submit")
    client.force_login(curator)
    page = client.get(reverse("home")).content.decode()
    assert 'data-state="generated">Generated</a>: <strong>2</strong>' in page
    assert 'data-state="pending_review">Pending review</a>: <strong>1</strong>' in page


def test_a_researcher_sees_running_jobs_polled_until_none_runs(client, make_user):
    from generation.models import ModelConfig, PromptTemplate
    from generation.services import prompt_templates_ensure

    prompt_templates_ensure()
    config = ModelConfig.objects.create(name="remote", backend=ModelConfig.Backend.OPENAI, api_model="gpt-4")

    researcher = make_user("researcher")
    client.force_login(researcher)
    assert "No job is running." in client.get(reverse("home")).content.decode()
    job = GenerationJob.objects.create(parameters={}, model_config=config, seed=1, planned=6,
                                       prompt_template=PromptTemplate.objects.first(), status=JobStatus.RUNNING,
                                       progress_done=2, progress_total=6, created_by=researcher)
    page = client.get(reverse("home")).content.decode()
    assert f'hx-get="{reverse("home")}"' in page and 'aria-valuenow="33"' in page
    polled = client.get(reverse("home"), HTTP_HX_REQUEST="true")
    assert polled.status_code == 200 and f"Job {job.pk}" in polled.content.decode()
    GenerationJob.objects.filter(pk=job.pk).update(status=JobStatus.DONE, progress_done=6)
    polled = client.get(reverse("home"), HTTP_HX_REQUEST="true")
    assert polled.status_code == 286 and "No job is running." in polled.content.decode()  # htmx stops polling
