"""Crafted input to the generation pages and API: NUL bytes, digits other than 0-9 ('²' fails int(), '٣' reads as
3), numbers of thousands of digits. Each is a 400 (the API, a form error) or a 404, never a 500 nor a value other
than the one a person reads."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from generation.forms import JobForm
from generation.models import ModelConfig, Note, SymptomProposal

from .factories import NoteFactory

pytestmark = pytest.mark.django_db

CRAFTED_FILTERS = [("job", "²"), ("job", "٣"), ("job", "１"), ("job", "1\x00"), ("job", "9" * 5000),
                   ("job", str(2**63)), ("code", "J\x0006"), ("model", "gpt\x00"), ("variant", "\x00"),
                   ("check", "\x00")]

NOTE_LINK = re.compile(r'href="/generation/notes/\d+/"')


@pytest.fixture
def generated_notes(db):
    """Three generated notes of job 3 and one of job 4."""
    return [NoteFactory(synthetic=True, icd_code="J06", metadata={"job_id": job, "generation_model": "m",
                                                                   "prompt_variant": "symptoms", "checks": {}})
            for job in (3, 3, 3, 4)]


@pytest.mark.parametrize(("key", "value"), CRAFTED_FILTERS)
def test_the_notes_api_answers_a_crafted_filter_with_a_400_naming_it(client, make_user, generated_notes, key, value):
    client.force_login(make_user("researcher"))
    response = client.get("/api/generation/notes/", {key: value})
    assert response.status_code == 400 and key in response.json(), response.content[:300]
    assert client.get("/api/generation/notes/", {"job": "3"}).json()["count"] == 3


@pytest.mark.parametrize(("key", "value"), CRAFTED_FILTERS)
def test_the_notes_page_says_a_crafted_filter_is_not_applied(client, make_user, generated_notes, key, value):
    client.force_login(make_user("researcher"))
    for headers in ({}, {"HTTP_HX_REQUEST": "true"}):
        page = client.get(reverse("generation:notes"), {key: value}, **headers)
        body = page.content.decode()
        assert page.status_code == 200 and 'data-testid="filter-error"' in body and "Not applied" in body
        assert len(NOTE_LINK.findall(body)) == 4  # every note: the filter is not applied
    filtered = client.get(reverse("generation:notes"), {"job": "3"}).content.decode()
    assert 'data-testid="filter-error"' not in filtered and len(NOTE_LINK.findall(filtered)) == 3


@pytest.mark.parametrize("counts", ["J06=²", "J06=٣", "J06=" + "9" * 5000, "J06=1\x00"])
def test_counts_in_other_digits_or_of_thousands_of_digits_are_a_form_error(client, make_user, counts):
    config = ModelConfig.objects.create(name="fake-api", backend=ModelConfig.Backend.OPENAI, api_model="gpt-test",
                                        base_url="http://127.0.0.1:9/v1")
    data = {"categories": "J06", "budget": "3", "allocation": "explicit", "counts": counts, "symptom_mode": "uniform",
            "variant": "symptoms_example", "language": "ru", "model_config": config.pk, "min_words": "30",
            "seed": "17"}
    form = JobForm(data=data)
    assert not form.is_valid() and "counts" in form.errors, form.errors
    client.force_login(make_user("researcher"))
    page = client.post(reverse("generation:new"), {**data, "action": "preview"}, HTTP_HX_REQUEST="true")
    assert page.status_code == 200 and "Please correct the form." in page.content.decode()


@pytest.mark.parametrize(("field", "value"), [("budget", "٣"), ("seed", "٣"), ("min_words", "٣"),
                                              ("max_new_tokens", "٣"), ("temperature", "١"), ("top_p", "٠"),
                                              ("budget_cap", "٣")])
def test_numbers_in_other_digits_are_a_form_error(field, value):
    """int() and float() read '٣' as 3: the value acted on would not be the one a person reads."""
    config = ModelConfig.objects.create(name="fake-api", backend=ModelConfig.Backend.OPENAI, api_model="gpt-test",
                                        base_url="http://127.0.0.1:9/v1")
    data = {"categories": "J06", "budget": "3", "allocation": "uniform", "symptom_mode": "uniform",
            "variant": "symptoms_example", "language": "ru", "model_config": config.pk, "min_words": "30",
            "seed": "17", field: value}
    form = JobForm(data=data)
    assert not form.is_valid() and field in form.errors, form.errors


def test_the_enrichment_page_answers_crafted_ids_with_a_404_or_ignores_them(client, make_user):
    client.force_login(make_user("researcher"))
    for config in ("²", "٣", "x", "", "9" * 5000, "1\x00"):
        response = client.post(reverse("generation:enrichment"), {"action": "extract", "model_config": config,
                                                                   "categories": "J06"})
        assert response.status_code == 404, config
    proposal = SymptomProposal.objects.create(category="J06", symptom_key="кашель", symptom="кашель")
    reviewed = client.post(reverse("generation:enrichment"), {"action": "reject",
                                                              "proposal": ["²", "٣", "9" * 5000, "x", "\x00"]},
                           follow=True)
    assert reviewed.status_code == 200 and "0 proposals reviewed." in reviewed.content.decode()
    proposal.refresh_from_db()
    assert proposal.status == "proposed" and Note.objects.count() == 0


@pytest.mark.parametrize("body", [
    '{"budget": 3, "seed": 9223372036854775808}',
    '{"budget": 3, "seed": ' + "9" * 5000 + "}",
    '{"budget": 3, "seed": "' + "9" * 5000 + '"}',
    '{"budget": 3, "seed": 1e400}',
    '{"budget": 3, "overrides": {"J06": ' + "9" * 5000 + "}}",
    '{"budget": 3, "overrides": {"J06\\u0000": 1}}',
    '{"budget": 3, "categories": ["J0\\u00006"]}',
    '{"budget": "\u0663", "seed": 1}',
    '{"budget": 3, "seed": "\u0663"}',
    '{"budget": 3, "overrides": {"J06": "\u00b2"}}',
])
def test_the_plan_api_answers_numbers_beyond_bigint_and_nul_bytes_with_a_400(client, make_user, body):
    client.force_login(make_user("researcher"))
    for url in ("/api/generation/plans/", "/api/generation/jobs/"):
        response = client.post(url, body, content_type="application/json")
        assert response.status_code == 400, (url, response.content[:300])
