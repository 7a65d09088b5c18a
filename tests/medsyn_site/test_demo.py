"""The demo leaves every role something to do: notes waiting in the curation queue, a study open for the physician
and a job of the embedded Russian model queued for the gpu worker; run again, it adds nothing."""

from __future__ import annotations

import pytest

from generation.models import GenerationJob, ModelConfig, Note
from generation.services import TEMPLATE_BASELINE_NAME, prompt_templates_ensure
from medsyn_site.demo import DEMO_STUDY_NAME, demo_activity_ensure, demo_users_ensure
from review.assessment.models import Study
from review.curation.selectors import curation_notes
from tests.generation.conftest import REAL_NOTE_TEXTS, tiny_graph  # noqa: F401 (a fixture)
from tests.generation.factories import NoteFactory


@pytest.fixture
def train_notes(db):
    return [NoteFactory(text=texts[0].format(n=n + 1) + f" Визит {n}.", icd_code=category, split="train")
            for category, texts in REAL_NOTE_TEXTS.items() for n in range(8)]


def _state() -> tuple:
    return (Note.objects.filter(origin=Note.Origin.SYNTHETIC).count(), Study.objects.count(),
            GenerationJob.objects.count())


@pytest.mark.django_db
def test_every_demo_role_has_something_to_do_and_a_second_run_adds_nothing(tiny_graph, train_notes):  # noqa: F811
    prompt_templates_ensure()
    demo_users_ensure()
    done = demo_activity_ensure()
    assert len(done) == 3, done

    baseline_notes = Note.objects.filter(metadata__generation_model=TEMPLATE_BASELINE_NAME)
    assert baseline_notes.count() == 16 and all(note.language == "ru" for note in baseline_notes)
    queue = {note.pk: note.review_state for note in curation_notes(filters={"state": "to_review"})}
    assert sorted(queue.values()).count("pending_review") == 8 and len(queue) == 16  # the curator's queue

    study = Study.objects.get(name=DEMO_STUDY_NAME)
    assert study.state == Study.State.OPEN
    assert list(study.physicians.values_list("username", flat=True)) == ["demo_physician"]
    origins = sorted(study.items.values_list("note__origin", flat=True))
    assert origins.count("real") == origins.count("synthetic") > 0

    job = GenerationJob.objects.exclude(model_config__name=TEMPLATE_BASELINE_NAME).get()
    russian = ModelConfig.objects.get(pk=job.model_config_id)
    assert russian.backend == ModelConfig.Backend.LOCAL and "ru" in russian.languages
    assert job.planned == 24 and job.status == "queued" and job.prompt_template.name.endswith("-completion")

    before = _state()
    assert demo_activity_ensure() == [] and _state() == before
