"""Template filling, the baseline with no model: varied notes in the job's language with the graph symptoms of the
plan item, the same notes for the same seed, a generation "model" registered for both languages, run as a job through
the service layer with its provenance."""

from __future__ import annotations

import re

import pytest
from django.core.exceptions import ValidationError

from generation import jobs
from generation.backends import GenerationRequest, PlanInputs, backend_for
from generation.backends.template_backend import TemplateBackend, days_phrase, template_note
from generation.checks import script_share
from generation.enrichment import do_start_symptom_extraction
from generation.forms import JobForm, model_and_template_check, model_config_for_language
from generation.jobs import PlanRequest, do_create_job, job_execute, queue_for
from generation.models import ModelConfig, Note
from generation.services import TEMPLATE_BASELINE_NAME, embedded_model_configs_ensure, prompt_templates_ensure
from tests.generation.conftest import TINY_GRAPH_ROWS

pytestmark = pytest.mark.django_db

SYMPTOMS = ("кашель", "насморк", "боль в горле", "лихорадка")


def _inputs(n: int, *, language: str = "ru", symptoms: tuple[str, ...] = SYMPTOMS, **fields) -> PlanInputs:
    return PlanInputs(language=language, seed=f"17:{n}", symptoms=symptoms, **fields)


def _first_sentence_template(text: str, symptoms: tuple[str, ...]) -> str:
    """The note with its symptoms and numbers blanked: what is left is the templates' wording."""
    for symptom in sorted(symptoms, key=len, reverse=True):
        text = text.replace(symptom, "_")
    return re.sub(r"\d+", "#", text)


@pytest.fixture
def baseline(db) -> ModelConfig:
    prompt_templates_ensure()  # a transactional test elsewhere in the suite may have flushed them
    return next(config for config in embedded_model_configs_ensure() if config.name == TEMPLATE_BASELINE_NAME)


def test_russian_notes_are_varied_and_carry_every_symptom_of_the_item():
    notes = [template_note(_inputs(n)) for n in range(40)]
    for note in notes:
        assert script_share(note, "ru") >= 0.95, note
        assert all(symptom in note for symptom in SYMPTOMS), note
        assert len(note.split()) >= 10 and note.endswith(".")
    assert len(set(notes)) == len(notes)
    assert len({_first_sentence_template(note, SYMPTOMS) for note in notes}) >= 20  # not one sentence frame
    # the symptoms are shuffled and spread over one to three sentences
    orders = {tuple(sorted(SYMPTOMS, key=note.index)) for note in notes}
    assert len(orders) >= 10
    assert any("Также отмечает" in note or "Кроме того" in note or "Дополнительно" in note or "Помимо этого" in note
               for note in notes)


def test_the_same_seed_gives_the_same_note_and_another_seed_another():
    assert template_note(_inputs(3)) == template_note(_inputs(3))
    assert template_note(_inputs(3)) != template_note(_inputs(4))
    backend = TemplateBackend(ModelConfig(name="t", backend=ModelConfig.Backend.TEMPLATE))
    results = backend.generate([GenerationRequest(key=str(n), system="", user="", inputs=_inputs(n)) for n in (1, 2)])
    assert [r.key for r in results] == ["1", "2"] and all(r.ok for r in results)
    assert [r.text for r in results] == [template_note(_inputs(1)), template_note(_inputs(2))]
    assert (results[0].prompt_tokens, results[0].completion_tokens, results[0].cost) == (0, 0, None)


def test_english_notes_and_the_diagnosis_only_when_the_prompt_named_it():
    english = template_note(_inputs(1, language="en", symptoms=("cough", "fever", "sore throat")))
    assert script_share(english, "en") == 1.0 and all(s in english for s in ("cough", "fever", "sore throat"))
    assert "J06" not in english  # prompt(S) names no disease
    named = [template_note(_inputs(n, symptoms=(), code="J06.9", disease="Острый назофарингит")) for n in range(8)]
    assert all("«Острый назофарингит» (J06.9)" in note for note in named)
    # A name in another script (the WHO English name in a Russian note) is left out, the code stays.
    coded = template_note(_inputs(1, symptoms=(), code="J06.9", disease="Acute nasopharyngitis"))
    assert "J06.9" in coded and "Acute" not in coded and script_share(coded, "ru") >= 0.9
    assert [days_phrase(n, "ru") for n in (1, 3, 5, 11, 21, 22)] == [
        "1 день", "3 дня", "5 дней", "11 дней", "21 день", "22 дня"]


def test_a_request_without_the_plan_item_fails_alone():
    backend = TemplateBackend(ModelConfig(name="t", backend=ModelConfig.Backend.TEMPLATE))
    bare, german, fine = backend.generate([
        GenerationRequest(key="a", system="s", user="u"),
        GenerationRequest(key="b", system="", user="", inputs=_inputs(1, language="de")),
        GenerationRequest(key="c", system="", user="", inputs=_inputs(1)),
    ])
    assert not bare.ok and "plan item" in bare.error
    assert not german.ok and "'de'" in german.error
    assert fine.ok


def test_the_baseline_is_registered_for_both_languages_and_offered_by_the_form(baseline):
    assert (baseline.backend, baseline.languages, baseline.licence) == ("template", ["ru", "en"], "n/a (no model)")
    assert isinstance(backend_for(baseline), TemplateBackend) and queue_for(baseline) == "default"
    baseline.full_clean()  # no model path, no API model needed
    for language in ("ru", "en"):
        config, template = model_and_template_check(model_config=baseline, variant="symptoms", language=language)
        assert config == baseline and template.name == f"default-symptoms-{language}"
        form = JobForm({"categories": "J06", "budget": 2, "allocation": "weighted", "counts": "",
                        "symptom_mode": "uniform", "variant": "symptoms", "language": language,
                        "model_config": baseline.pk, "min_words": 30, "seed": 17})
        assert form.is_valid(), form.errors
        assert "template filling, no model" in str(form["model_config"])
    # a baseline to compare with, never the default when a model writes the language
    other = ModelConfig.objects.create(name="a-model", backend="openai", api_model="m", languages=["ru"])
    ModelConfig.objects.exclude(pk__in=[baseline.pk, other.pk]).delete()
    assert model_config_for_language("ru") == other and model_config_for_language("en") == baseline
    with pytest.raises(ValidationError, match="fills templates"):
        do_start_symptom_extraction(actor=None, model_config=baseline, categories=["J06"])


def test_a_job_through_the_service_layer_writes_russian_notes_with_graph_symptoms(baseline, tiny_graph, real_notes):
    request = PlanRequest(categories=["J06", "I10"], budget=8, allocation="uniform", variant="symptoms", seed=5)
    job = do_create_job(request=request, model_config=baseline, actor=None, enqueue=False)
    job_execute(job.pk)
    job.refresh_from_db()
    assert (job.status, job.ok, job.failed) == ("done", 8, 0), job.error

    graph_symptoms = {row["to"]["key"] for row in TINY_GRAPH_ROWS if row.get("type") == "HAS_SYMPTOM"}
    notes = list(Note.objects.filter(metadata__job_id=job.pk).order_by("id"))
    assert len({note.text for note in notes}) == 8
    for note in notes:
        item = note.generation_item
        assert note.language == "ru" and script_share(note.text, "ru") >= 0.95
        assert item.symptoms and set(item.symptoms) <= graph_symptoms
        assert all(symptom in note.text for symptom in item.symptoms), (note.text, item.symptoms)
        meta = note.metadata
        assert meta["generation_model"] == TEMPLATE_BASELINE_NAME
        assert (meta["model_config"]["backend"], meta["model_config"]["licence"]) == ("template", "n/a (no model)")
        assert meta["checks"]["scores"]["symptom_recall"] == 1.0

    # the same request again writes the same notes (the seed decides), which the content hash then skips
    again = do_create_job(request=request, model_config=baseline, actor=None, enqueue=False)
    job_execute(again.pk)
    again.refresh_from_db()
    assert (again.ok, again.skipped) == (0, 8)


def test_prompt_code_jobs_name_the_disease_from_the_graph(baseline, tiny_graph, real_notes):
    request = PlanRequest(categories=["I10"], budget=3, allocation="uniform", variant="code", seed=5)
    job = do_create_job(request=request, model_config=baseline, actor=None, enqueue=False)
    job_execute(job.pk)
    texts = list(Note.objects.filter(metadata__job_id=job.pk).values_list("text", flat=True))
    assert len(texts) == 3 and all("«Эссенциальная гипертензия» (I10)" in text for text in texts)
    assert jobs.GenerationItem.objects.filter(job=job).first().disease_name == "Эссенциальная гипертензия"
