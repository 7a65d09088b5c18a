"""Generation jobs in process: plans and prompts per seed, item recording, cancel, budget cap, views and API."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from generation import jobs
from generation.api import PlanRequestSerializer
from generation.backends.base import GenerationResult
from generation.forms import JobForm
from generation.jobs import PlanRequest, do_cancel_job, do_create_job, do_resume_job, job_execute, job_plan_preview
from generation.models import GenerationJob, ModelConfig, Note, PromptTemplate
from generation.services import prompt_templates_ensure
from graph.store import GraphUnavailable
from medsyn_site.core.audit import audit_trail
from medsyn_site.core.errors import StateConflict
from medsyn_site.core.models import AuditEvent, AuditRecord

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def prompt_templates(db):
    """The seeded templates (a transactional test elsewhere in the suite may have flushed them)."""
    prompt_templates_ensure()

NOTE_TEXT = ("Пациент {i} жалуется на сильный кашель, насморк и боль в горле, лихорадку до тридцати девяти градусов, "
             "слабость и потливость в течение недели, ухудшение по вечерам.")


class FakeBackend:
    """Answers every request with a distinct Russian note; records the batches it was given."""

    def __init__(self, *, fail_keys: frozenset[str] = frozenset(), text: str | None = None, cost: float | None = None,
                 on_batch=None) -> None:
        self.batches: list[list[str]] = []
        self.fail_keys, self.text, self.cost, self.on_batch = fail_keys, text, cost, on_batch

    def generate(self, requests, watch=None):
        self.batches.append([r.key for r in requests])
        if self.on_batch:
            self.on_batch(len(self.batches))
        results = [GenerationResult(key=r.key, error="injected failure") if r.key in self.fail_keys else
                   GenerationResult(key=r.key, text=self.text or NOTE_TEXT.format(i=r.key), prompt_tokens=10,
                                    completion_tokens=20, latency_s=0.01, cost=self.cost)
                   for r in requests]
        for done, result in enumerate(results, start=1):
            if watch is not None:
                watch.result(result)
                watch.progress(done)
        return results


@pytest.fixture
def api_config(db):
    return ModelConfig.objects.create(name="fake-api", backend=ModelConfig.Backend.OPENAI, api_model="gpt-test",
                                      base_url="http://127.0.0.1:9/v1", batch_size=2)


def _request(**overrides) -> PlanRequest:
    return PlanRequest(**{"categories": ["J06", "I10"], "budget": 6, "allocation": "uniform", "seed": 17, **overrides})


def _built(job: GenerationJob) -> GenerationJob:
    """The job with its items, as its worker builds them before its first batch (job_execute does it too)."""
    jobs.job_items_build(job)
    return job


def _item_view(job: GenerationJob) -> list[tuple]:
    return list(job.items.order_by("index").values_list("category", "donor_code", "symptoms", "example_note_id",
                                                        "prompt_system", "prompt_user"))


def test_same_seed_gives_the_same_plan_and_prompts(tiny_graph, real_notes, api_config):
    first = _built(do_create_job(request=_request(), model_config=api_config, actor=None, enqueue=False))
    second = _built(do_create_job(request=_request(), model_config=api_config, actor=None, enqueue=False))
    other = _built(do_create_job(request=_request(seed=18), model_config=api_config, actor=None, enqueue=False))
    assert first.planned == 6 and len(_item_view(first)) == 6
    assert _item_view(first) == _item_view(second)
    assert _item_view(first) != _item_view(other)
    item = first.items.get(index=0)
    assert item.symptoms and all(symptom in item.prompt_user for symptom in item.symptoms)
    assert item.example_text in item.prompt_user and item.example_note_id is not None
    assert first.prompt_template.variant == "symptoms_example" and first.graph_version


def test_plan_preview_rows(tiny_graph, real_notes):
    plan = job_plan_preview(_request(allocation="weighted", budget=10))
    rows = {row.category: row for row in plan.rows}
    assert set(rows) == {"I10", "J06"} and sum(row.count for row in plan.rows) == plan.total == 10
    assert rows["J06"].n_exmp == 3 and rows["J06"].n_symp == 4 and rows["J06"].weight > 0


def test_job_runs_every_item_once_with_provenance_and_checks(tiny_graph, real_notes, api_config, monkeypatch):
    backend = FakeBackend()
    monkeypatch.setattr(jobs, "backend_for", lambda config: backend)
    job = do_create_job(request=_request(temperature=0.3), model_config=api_config, actor=None, enqueue=False)
    job_execute(job.pk)
    job.refresh_from_db()
    assert (job.status, job.ok, job.failed, job.skipped) == ("done", 6, 0, 0)
    assert [len(batch) for batch in backend.batches] == [2, 2, 2]
    assert job.prompt_tokens == 60 and job.completion_tokens == 120
    notes = Note.objects.filter(metadata__job_id=job.pk)
    assert notes.count() == 6
    item = job.items.get(index=0)
    meta = item.note.metadata
    assert meta["generation_model"] == "fake-api" and meta["prompt_variant"] == "symptoms_example"
    assert meta["model_config"]["endpoint"] == "http://127.0.0.1:9/v1" and meta["model_config"]["temperature"] == 0.3
    assert meta["prompt_template"] == {"id": job.prompt_template_id, "name": "default-symptoms_example-ru",
                                       "version": 1}
    assert meta["prompt"]["user"] == item.prompt_user and meta["symptoms"] == item.symptoms
    assert meta["example_note_id"] == item.example_note_id and meta["example_text"] == item.example_text
    assert meta["prompt_inputs"] == ["symptoms", "example"] and meta["check_thresholds"]["symptom_recall_min"] == 0.65
    assert meta["graph_version"] == job.graph_version and meta["seed"] == 17
    assert meta["tokens"] == {"prompt": 10, "completion": 20} and meta["latency_s"] == 0.01
    assert "symptom_recall" in meta["checks"]["scores"] and isinstance(meta["checks"]["passed"], bool)
    # A second delivery of the task finds nothing pending and writes nothing.
    GenerationJob.objects.filter(pk=job.pk).update(status="running")
    job_execute(job.pk)
    assert Note.objects.filter(metadata__job_id=job.pk).count() == 6 and len(backend.batches) == 3


def test_a_note_records_the_licence_of_its_model(tiny_graph, real_notes, api_config, monkeypatch):
    ModelConfig.objects.filter(pk=api_config.pk).update(licence="Gemma Terms of Use",
                                                        licence_url="https://ai.google.dev/gemma/terms")
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend())
    job = do_create_job(request=_request(budget=2), model_config=api_config, actor=None, enqueue=False)
    job_execute(job.pk)
    [model] = {json.dumps(meta["model_config"], sort_keys=True)
               for meta in Note.objects.filter(metadata__job_id=job.pk).values_list("metadata", flat=True)}
    model = json.loads(model)
    assert (model["name"], model["licence"], model["licence_url"]) == (
        "fake-api", "Gemma Terms of Use", "https://ai.google.dev/gemma/terms")


def test_failures_duplicates_and_resume(tiny_graph, real_notes, api_config, monkeypatch, client, make_user):
    job = _built(do_create_job(request=_request(), model_config=api_config, actor=None, enqueue=False))
    keys = list(job.items.order_by("index").values_list("pk", flat=True))
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend(fail_keys=frozenset({str(keys[0])})))
    job_execute(job.pk)
    job.refresh_from_db()
    assert (job.status, job.ok, job.failed) == ("done", 5, 1)
    assert (job.progress_done, job.progress_total, job.percent) == (6, 6, 100)
    assert job.items.get(index=0).error == "injected failure"
    client.force_login(make_user("researcher"))
    page = client.get(reverse("generation:job", kwargs={"pk": job.pk})).content.decode()
    assert 'data-testid="item-errors"' in page and "injected failure" in page and 'data-testid="resume"' in page
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend())
    monkeypatch.setattr(jobs, "job_enqueue", lambda job: None)
    resumed = do_resume_job(job=job, actor=None)
    assert (resumed.status, resumed.failed, resumed.progress_done, resumed.percent) == ("queued", 0, 5, 83)
    job_execute(job.pk)
    job.refresh_from_db()
    assert (job.status, job.ok, job.failed, job.progress_done) == ("done", 6, 0, 6)

    same_text = do_create_job(request=_request(seed=99), model_config=api_config, actor=None, enqueue=False)
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend(text=NOTE_TEXT.format(i="same")))
    job_execute(same_text.pk)
    same_text.refresh_from_db()
    assert same_text.status == "done" and same_text.skipped >= 4 and same_text.ok <= 2
    assert "duplicate" in same_text.items.filter(status="skipped").first().error


def test_nothing_ran_means_failed(tiny_graph, real_notes, api_config, monkeypatch):
    job = _built(do_create_job(request=_request(), model_config=api_config, actor=None, enqueue=False))
    keys = frozenset(str(pk) for pk in job.items.values_list("pk", flat=True))
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend(fail_keys=keys))
    job_execute(job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and job.failed == 6 and job.error


def test_cancel_stops_the_running_batch_at_the_next_item_and_the_budget_cap(tiny_graph, real_notes, api_config,
                                                                             monkeypatch):
    monkeypatch.setattr(jobs, "PROGRESS_INTERVAL_SECONDS", 0)  # a check after every item
    job = do_create_job(request=_request(), model_config=api_config, actor=None, enqueue=False)
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend(
        on_batch=lambda n: do_cancel_job(job=job, actor=None) if n == 2 else None))
    job_execute(job.pk)
    job.refresh_from_db()
    # cancelled as the second batch began: its first item was recorded, then the check after it stopped the batch
    assert job.status == "cancelled" and job.ok == 3 and job.items.filter(status="pending").count() == 3
    assert (job.progress_done, job.percent) == (3, 50)

    capped = do_create_job(request=_request(), model_config=api_config, actor=None, enqueue=False,
                           budget_cap=Decimal("0.05"))
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend(cost=0.01))
    job_execute(capped.pk)
    capped.refresh_from_db()
    assert capped.status == "done" and capped.ok == 4 and capped.cost == Decimal("0.04")
    assert capped.skipped == 2 and "budget cap" in capped.error and capped.progress_done == 6


def test_views_need_the_permission(client, make_user):
    client.force_login(make_user("physician"))
    assert client.get(reverse("generation:home")).status_code == 403
    assert client.get("/api/generation/jobs/").status_code == 403


def test_new_job_page_preview_launch_and_status_polling(client, make_user, tiny_graph, real_notes, api_config,
                                                        monkeypatch):
    client.force_login(make_user("researcher"))
    page = client.get(reverse("generation:new") + "?code=J06")
    assert page.status_code == 200 and 'value="J06"' in page.content.decode()
    form = {"categories": "J06", "budget": 3, "allocation": "weighted", "counts": "", "symptom_mode": "uniform",
            "variant": "symptoms_example", "language": "ru", "model_config": api_config.pk, "min_words": 30,
            "seed": 17}
    preview = client.post(reverse("generation:new"), {**form, "action": "preview"}, HTTP_HX_REQUEST="true")
    assert 'data-testid="plan-table"' in preview.content.decode() and "<html" not in preview.content.decode()
    launched = client.post(reverse("generation:new"), {**form, "action": "launch"})
    job = GenerationJob.objects.get()
    assert launched.status_code == 302 and launched["Location"] == reverse("generation:job", kwargs={"pk": job.pk})
    assert client.get(launched["Location"], HTTP_HX_REQUEST="true").status_code == 200
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend())
    job_execute(job.pk)
    finished = client.get(launched["Location"], HTTP_HX_REQUEST="true")
    assert finished.status_code == 286 and "Done" in finished.content.decode()
    notes = client.get(reverse("generation:notes") + f"?job={job.pk}&code=J06&check=")
    assert notes.content.decode().count("/generation/notes/") >= 3
    note = Note.objects.filter(metadata__job_id=job.pk).first()
    detail = client.get(reverse("generation:note", kwargs={"pk": note.pk})).content.decode()
    assert note.metadata["example_text"][:40] in detail and "default-symptoms_example-ru" in detail


def test_api_plan_job_cancel_resume_and_notes(client, make_user, tiny_graph, real_notes, api_config, monkeypatch):
    client.force_login(make_user("researcher"))
    body = {"categories": ["J06", "I10"], "budget": 4, "allocation": "uniform", "seed": 5,
            "checks": {"words_min": 3, "symptom_recall_min": 0.0}}
    plan = client.post("/api/generation/plans/", body, content_type="application/json").json()
    assert plan["total"] == 4 and {row["category"] for row in plan["rows"]} == {"J06", "I10"}
    created = client.post("/api/generation/jobs/", {**body, "model_config": "fake-api"},
                          content_type="application/json")
    assert created.status_code == 201, created.content
    job_id = created.json()["id"]
    assert client.get(f"/api/generation/jobs/{job_id}/").json()["status"] == "queued"
    assert client.post(f"/api/generation/jobs/{job_id}/cancel/").json()["status"] == "cancelled"
    monkeypatch.setattr(jobs, "job_enqueue", lambda job: None)
    assert client.post(f"/api/generation/jobs/{job_id}/resume/").json()["status"] == "queued"
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend())
    job_execute(job_id)
    status = client.get(f"/api/generation/jobs/{job_id}/").json()
    assert status["status"] == "done" and status["ok"] == 4 and status["percent"] == 100
    notes = client.get(f"/api/generation/notes/?job={job_id}&variant=symptoms_example&model=fake-api").json()
    assert notes["count"] == 4
    passed = client.get(f"/api/generation/notes/?job={job_id}&check=pass").json()["count"]
    assert passed == 4 and client.get(f"/api/generation/notes/?job={job_id}&check=fail").json()["count"] == 0
    assert client.get(f"/api/generation/notes/?job={job_id}&code=I10").json()["count"] == 2
    assert client.post("/api/generation/plans/", {**body, "checks": {"nonsense": 1}},
                       content_type="application/json").status_code == 400
    detail = client.get(f"/api/generation/notes/{notes['results'][0]['id']}/").json()
    assert detail["metadata"]["job_id"] == job_id and detail["metadata"]["prompt"]["user"]
    assert client.post("/api/generation/plans/", {"categories": ["Z99"], "budget": 1},
                       content_type="application/json").status_code == 400


def test_nul_characters_are_dropped_and_long_prompts_skipped(tiny_graph, real_notes, api_config, monkeypatch):
    job = do_create_job(request=_request(budget=2, categories=["J06"]), model_config=api_config, actor=None,
                        enqueue=False)
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend(text="Кашель\x00 и насморк у пациента."))
    job_execute(job.pk)
    job.refresh_from_db()
    assert job.ok == 1 and job.skipped == 1  # the second identical text collides on the content hash
    assert Note.objects.get(metadata__job_id=job.pk).text == "Кашель и насморк у пациента."

    Note.objects.filter(origin="real").update(text="слово " * 1300)
    long_job = _built(do_create_job(request=_request(budget=2, categories=["J06"], min_words=1),
                                    model_config=api_config, actor=None, enqueue=False))
    assert long_job.skipped == 2 and "prompt too long" in long_job.items.first().error


def test_resume_refuses_a_live_job_and_accepts_a_stalled_one(tiny_graph, real_notes, api_config, monkeypatch):
    sent = []
    monkeypatch.setattr(jobs, "job_enqueue", lambda job: sent.append(job.pk))
    job = do_create_job(request=_request(), model_config=api_config, actor=None, enqueue=False)
    GenerationJob.objects.filter(pk=job.pk).update(status="running")
    with pytest.raises(StateConflict, match="still running"):
        do_resume_job(job=job, actor=None)
    assert sent == []
    GenerationJob.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(minutes=6))
    job.refresh_from_db()
    assert job.stalled and do_resume_job(job=job, actor=None).status == "queued" and sent == [job.pk]


def test_provenance_records_only_what_the_prompt_contained(tiny_graph, real_notes, api_config, monkeypatch):
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend())
    job = do_create_job(request=_request(variant="symptoms", budget=2, categories=["J06"]), model_config=api_config,
                        actor=None, enqueue=False)
    job_execute(job.pk)
    item = job.items.get(index=0)
    meta = item.note.metadata
    assert meta["prompt_variant"] == "symptoms" and meta["prompt_inputs"] == ["symptoms"]
    assert meta["example_note_id"] is None and meta["example_text"] == ""
    assert meta["symptoms"] == item.symptoms and all(symptom in item.prompt_user for symptom in item.symptoms)
    assert not {"example_precision", "example_jaccard"} & set(meta["checks"]["scores"])

    code = do_create_job(request=_request(variant="code", budget=1, categories=["J06"], seed=3),
                         model_config=api_config, actor=None, enqueue=False)
    job_execute(code.pk)
    meta = code.items.get(index=0).note.metadata
    assert meta["prompt_inputs"] == ["code"] and meta["symptoms"] == [] and meta["example_text"] == ""
    assert "symptom_recall" not in meta["checks"]["scores"]


def test_create_cancel_and_resume_write_their_audit_records(tiny_graph, real_notes, api_config, monkeypatch,
                                                            make_user):
    monkeypatch.setattr(jobs, "job_enqueue", lambda job: None)
    researcher = make_user("researcher")
    job = do_create_job(request=_request(), model_config=api_config, actor=researcher)
    do_cancel_job(job=job, actor=researcher)
    with pytest.raises(StateConflict, match="already finished"):
        do_cancel_job(job=job, actor=researcher)
    do_resume_job(job=job, actor=researcher)

    resumed, cancelled, created = audit_trail(job)
    assert [(r.actor, r.action, r.from_state, r.to_state) for r in (created, cancelled, resumed)] == [
        (researcher, AuditEvent.CREATE_GENERATION_JOB, "", "queued"),
        (researcher, AuditEvent.CANCEL_GENERATION_JOB, "queued", "cancelled"),
        (researcher, AuditEvent.RESUME_GENERATION_JOB, "cancelled", "queued")]
    assert (created.object_type, created.object_id) == ("GenerationJob", str(job.pk))
    assert created.extra["planned"] == 6 and created.extra["model_config"] == "fake-api"
    assert resumed.extra == {"retried": 0}


def test_api_refuses_actions_the_job_state_does_not_allow(client, make_user, tiny_graph, real_notes, api_config,
                                                         monkeypatch):
    monkeypatch.setattr(jobs, "job_enqueue", lambda job: None)
    client.force_login(make_user("researcher"))
    job = do_create_job(request=_request(), model_config=api_config, actor=None)
    live = client.post(f"/api/generation/jobs/{job.pk}/resume/")
    assert live.status_code == 409 and "still queued" in live.json()["detail"]
    assert client.post(f"/api/generation/jobs/{job.pk}/cancel/").status_code == 200
    again = client.post(f"/api/generation/jobs/{job.pk}/cancel/")
    assert again.status_code == 409 and "already finished" in again.json()["detail"]
    page = client.post(reverse("generation:job_cancel", kwargs={"pk": job.pk}), follow=True).content.decode()
    assert "already finished (Cancelled): nothing to cancel" in page
    assert [r.action for r in audit_trail(job)] == [AuditEvent.CANCEL_GENERATION_JOB, AuditEvent.CREATE_GENERATION_JOB]


def test_plan_and_template_problems_are_bad_requests_and_form_messages(client, make_user, tiny_graph, real_notes,
                                                                       api_config):
    client.force_login(make_user("researcher"))
    unknown = client.post("/api/generation/plans/", {"categories": ["Z99"], "budget": 1},
                          content_type="application/json")
    assert unknown.status_code == 400 and unknown.json() == {"detail": "categories not in the graph: Z99"}
    form = {**_form_data({**GOOD_PLAN, "categories": ["Z99"]}, api_config), "action": "preview"}
    preview = client.post(reverse("generation:new"), form, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-testid="plan-error"' in preview and "categories not in the graph: Z99" in preview

    PromptTemplate.objects.filter(variant="code").delete()
    body = {**GOOD_PLAN, "variant": "code", "model_config": "fake-api"}
    missing = client.post("/api/generation/jobs/", body, content_type="application/json")
    assert missing.status_code == 400
    assert missing.json() == {"detail": "No prompt template for the variant code in the language ru."}
    launch = {**_form_data({**GOOD_PLAN, "variant": "code"}, api_config), "action": "launch"}
    page = client.post(reverse("generation:new"), launch).content.decode()
    assert "No prompt template for the variant code in the language ru." in page
    assert not GenerationJob.objects.exists()


GOOD_PLAN = {"categories": ["J06", "I10"], "budget": 4, "allocation": "uniform", "symptom_mode": "uniform",
             "variant": "symptoms_example", "language": "ru", "seed": 5, "min_words": 30}


def _form_data(plan: dict, config: ModelConfig) -> dict:
    """A plan as the job form's fields write it: codes and CODE=N pairs as text."""
    counts = plan.get("explicit_counts") or plan.get("overrides") or {}
    data = {name: value for name, value in plan.items() if name not in ("explicit_counts", "overrides")}
    data.update(categories=", ".join(plan.get("categories", [])), model_config=config.pk,
                counts=", ".join(f"{code}={count}" for code, count in counts.items()))
    return data


@pytest.mark.parametrize(("change", "form_field", "api_field"), [
    ({"max_new_tokens": 10**9}, "max_new_tokens", "max_new_tokens"),
    ({"max_new_tokens": 0}, "max_new_tokens", "max_new_tokens"),
    ({"temperature": 2.5}, "temperature", "temperature"),
    ({"top_p": 1.5}, "top_p", "top_p"),
    ({"seed": 2**70}, "seed", "seed"),
    ({"seed": 2**63}, "seed", "seed"),
    ({"seed": -(2**63) - 1}, "seed", "seed"),
    ({"budget": 0}, "budget", "budget"),
    ({"budget": 100_001}, "budget", "budget"),
    ({"min_words": 0}, "min_words", "min_words"),
    ({"categories": ["J06", "кашель"]}, "categories", "categories"),
    ({"allocation": "explicit", "explicit_counts": {"J06": 10**9}}, "counts", "explicit_counts"),
    ({"allocation": "explicit", "explicit_counts": {"J06": 60_000, "I10": 60_000}}, "counts", "explicit_counts"),
    ({"overrides": {"J06": 10**9}}, "counts", "overrides"),
    ({"allocation": "explicit", "explicit_counts": {"J06": 10_001}}, "counts", "explicit_counts"),
    ({"overrides": {"J06": 10_001}}, "counts", "overrides"),
    ({"overrides": {"J6": 1}}, "counts", "overrides"),
    ({"overrides": {"J06.9": 1}}, "counts", "overrides"),
    ({"overrides": {"J06": -1}}, "counts", "overrides"),
])
def test_the_job_form_and_the_api_refuse_the_same_plans(client, make_user, api_config, change, form_field,
                                                        api_field):
    plan = {**GOOD_PLAN, **change}
    form = JobForm(data=_form_data(plan, api_config))
    assert not form.is_valid() and form_field in form.errors, form.errors
    client.force_login(make_user("researcher"))
    job = {**plan, "model_config": "fake-api"}
    for url, body in (("/api/generation/plans/", plan), ("/api/generation/jobs/", job)):
        response = client.post(url, body, content_type="application/json")
        assert response.status_code == 400 and api_field in response.json(), (url, response.content)
    assert not GenerationJob.objects.exists()


def test_the_job_form_and_the_api_read_a_plan_the_same_way(api_config):
    plan = {**GOOD_PLAN, "categories": ["j06.9", "I10"], "overrides": {"j06": 3}, "max_new_tokens": 4096,
            "temperature": 0, "top_p": 1, "seed": 2**63 - 1}
    form = JobForm(data=_form_data(plan, api_config))
    assert form.is_valid(), form.errors
    serializer = PlanRequestSerializer(data=plan)
    assert serializer.is_valid(), serializer.errors
    assert form.plan_request() == serializer.validated_data["plan_request"] == PlanRequest(
        categories=["I10", "J06"], budget=4, allocation="uniform", overrides={"J06": 3}, seed=2**63 - 1,
        temperature=0.0, top_p=1.0, max_new_tokens=4096)


def test_a_graph_that_is_down_is_a_503_from_the_api_and_a_message_on_the_page(client, make_user, api_config,
                                                                             monkeypatch):
    def graph_down():
        raise GraphUnavailable("connection refused")

    monkeypatch.setattr(jobs, "get_graph_store", graph_down)
    client.force_login(make_user("researcher"))
    response = client.post("/api/generation/plans/", GOOD_PLAN, content_type="application/json")
    assert response.status_code == 503 and response.json()["component"] == "graph"
    form = {**_form_data(GOOD_PLAN, api_config), "action": "preview"}
    preview = client.post(reverse("generation:new"), form, HTTP_HX_REQUEST="true")
    assert preview.status_code == 200
    assert "The knowledge graph is unavailable: connection refused" in preview.content.decode()


@pytest.mark.parametrize(("plan", "message"), [
    ({"budget": 100_000}, "I10: 50000 tasks, J06: 50000 tasks; at most 10000 tasks a category"),
    ({"budget": 4, "overrides": {"M54": 3}}, "counts given for categories not in the plan: M54"),
    ({"budget": 4, "allocation": "explicit", "explicit_counts": {"J06": 2, "Z99": 3}},
     "counts given for categories not in the plan: Z99"),
])
def test_plans_over_the_bounds_or_with_counts_of_unknown_categories_are_refused(client, make_user, tiny_graph,
                                                                                real_notes, api_config, plan,
                                                                                message):
    """Bounded by planning.MAX_TASKS_PER_CATEGORY (and MAX_TASKS), whichever allocation makes the counts; a count
    for a category the plan does not have is an error, not ignored."""
    client.force_login(make_user("researcher"))
    body = {**GOOD_PLAN, **plan}
    job = {**body, "model_config": "fake-api"}
    for url, data in (("/api/generation/plans/", body), ("/api/generation/jobs/", job)):
        response = client.post(url, data, content_type="application/json")
        assert response.status_code == 400 and message in response.json()["detail"], response.content
    form = {**_form_data(body, api_config), "action": "preview"}
    page = client.post(reverse("generation:new"), form, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-testid="plan-error"' in page and message in page and 'data-testid="plan-table"' not in page
    assert not GenerationJob.objects.exists()


def test_a_preview_and_a_job_request_sample_no_task_the_worker_builds_the_items(client, make_user, tiny_graph,
                                                                                real_notes, api_config,
                                                                                monkeypatch):
    """The request only allocates (its time does not grow with the budget); the job's worker samples the tasks and
    writes the items with their prompts, in one transaction, once (bench/bench_plan_request.py has the figures)."""
    from generation import planning

    def no_sampling_here(*args, **kwargs):
        raise AssertionError("a task was sampled in the request")

    monkeypatch.setattr(planning, "symptoms_sample", no_sampling_here)
    monkeypatch.setattr(jobs, "job_enqueue", lambda job: None)
    client.force_login(make_user("researcher"))
    body = {**GOOD_PLAN, "budget": 20_000}
    preview = client.post("/api/generation/plans/", body, content_type="application/json")
    assert preview.status_code == 200 and preview.json()["total"] == 20_000
    assert job_plan_preview(_request(budget=20_000)).tasks == ()
    created = client.post("/api/generation/jobs/", {**body, "budget": 6, "model_config": "fake-api"},
                          content_type="application/json")
    assert created.status_code == 201, created.content
    job = GenerationJob.objects.get(pk=created.json()["id"])
    assert (job.planned, job.progress_total, job.items.count(), job.status) == (6, 6, 0, "queued")

    monkeypatch.undo()
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend())
    job_execute(job.pk)
    job.refresh_from_db()
    assert (job.status, job.ok, job.items.count(), job.step) == ("done", 6, 6, "")
    jobs.job_items_build(job)  # a second delivery builds nothing more
    assert job.items.count() == 6
    same = do_create_job(request=PlanRequest(**job.parameters), model_config=api_config, actor=None, enqueue=False)
    assert _item_view(_built(same)) == _item_view(job)  # the plan and prompts of the request, as the worker built them


def test_a_plan_that_cannot_be_built_any_more_fails_its_job_with_the_reason(tiny_graph, real_notes, api_config,
                                                                              monkeypatch):
    job = do_create_job(request=_request(), model_config=api_config, actor=None, enqueue=False)
    Note.objects.filter(origin="real").delete()  # the examples the weighted allocation needs are gone
    GenerationJob.objects.filter(pk=job.pk).update(parameters={**job.parameters, "allocation": "weighted"})
    job_execute(job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and "none of the chosen categories" in job.error and job.items.count() == 0
    assert job.resumable  # every item is left


def _finished(api_config, monkeypatch, **request) -> GenerationJob:
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend())
    job = do_create_job(request=_request(**request), model_config=api_config, actor=None, enqueue=False)
    job_execute(job.pk)
    job.refresh_from_db()
    return job


def test_a_job_with_every_item_done_is_not_resumed(client, make_user, tiny_graph, real_notes, api_config,
                                                   monkeypatch):
    """Resume used to send a done job back to the queue (and a cancel then ended it "cancelled" with every item
    done); only a stopped job with items left, or a stalled one, resumes."""
    sent = []
    monkeypatch.setattr(jobs, "job_enqueue", lambda job: sent.append(job.pk))
    done = _finished(api_config, monkeypatch)
    assert (done.status, done.ok, done.items_left, done.resumable) == ("done", 6, 0, False)
    with pytest.raises(StateConflict, match="done with no item left to run: nothing to resume"):
        do_resume_job(job=done, actor=None)
    client.force_login(make_user("researcher"))
    api = client.post(f"/api/generation/jobs/{done.pk}/resume/")
    assert api.status_code == 409 and "nothing to resume" in api.json()["detail"]
    page = client.post(reverse("generation:job_resume", kwargs={"pk": done.pk}))
    assert page.status_code == 409 and "nothing to resume" in page.content.decode()
    assert 'data-testid="resume"' not in client.get(reverse("generation:job", kwargs={"pk": done.pk})).content.decode()

    # Cancelled while its last batch ran: every item has its outcome, so there is nothing to resume either.
    cancelled = _finished(api_config, monkeypatch, seed=23)
    GenerationJob.objects.filter(pk=cancelled.pk).update(status="cancelled")
    cancelled.refresh_from_db()
    assert not cancelled.resumable
    assert client.post(f"/api/generation/jobs/{cancelled.pk}/resume/").status_code == 409
    done.refresh_from_db()
    cancelled.refresh_from_db()
    assert (done.status, cancelled.status, sent) == ("done", "cancelled", [])
    assert not AuditRecord.objects.filter(action=AuditEvent.RESUME_GENERATION_JOB).exists()


def test_a_stopped_job_with_items_left_resumes(tiny_graph, real_notes, api_config, monkeypatch):
    monkeypatch.setattr(jobs, "job_enqueue", lambda job: None)
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend(fail_keys=frozenset()))
    job = _built(do_create_job(request=_request(), model_config=api_config, actor=None, enqueue=False))
    failing = frozenset(str(pk) for pk in job.items.filter(index__lt=2).values_list("pk", flat=True))
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend(fail_keys=failing))
    job_execute(job.pk)
    job.refresh_from_db()
    assert (job.status, job.ok, job.failed, job.items_left, job.resumable) == ("done", 4, 2, 2, True)
    never_built = do_create_job(request=_request(seed=31), model_config=api_config, actor=None, enqueue=False)
    do_cancel_job(job=never_built, actor=None)
    never_built.refresh_from_db()
    assert (never_built.items_left, never_built.resumable) == (6, True)
    for stopped in (job, never_built):
        assert do_resume_job(job=stopped, actor=None).status == "queued"
        monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend())
        job_execute(stopped.pk)
        stopped.refresh_from_db()
        assert (stopped.status, stopped.ok, stopped.items_left) == ("done", 6, 0)
