"""Generation jobs in process: plans and prompts per seed, item recording, cancel, budget cap, views and API."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from generation import jobs
from generation.backends.base import GenerationResult
from generation.jobs import PlanRequest, do_cancel_job, do_create_job, do_resume_job, job_execute, job_plan_preview
from generation.models import GenerationJob, ModelConfig, Note
from generation.services import prompt_templates_ensure

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

    def generate(self, requests):
        self.batches.append([r.key for r in requests])
        if self.on_batch:
            self.on_batch(len(self.batches))
        return [GenerationResult(key=r.key, error="injected failure") if r.key in self.fail_keys else
                GenerationResult(key=r.key, text=self.text or NOTE_TEXT.format(i=r.key), prompt_tokens=10,
                                 completion_tokens=20, latency_s=0.01, cost=self.cost)
                for r in requests]


@pytest.fixture
def api_config(db):
    return ModelConfig.objects.create(name="fake-api", backend=ModelConfig.Backend.OPENAI, api_model="gpt-test",
                                      base_url="http://127.0.0.1:9/v1", batch_size=2)


def _request(**overrides) -> PlanRequest:
    return PlanRequest(**{"categories": ["J06", "I10"], "budget": 6, "allocation": "uniform", "seed": 17, **overrides})


def _item_view(job: GenerationJob) -> list[tuple]:
    return list(job.items.order_by("index").values_list("category", "donor_code", "symptoms", "example_note_id",
                                                        "prompt_system", "prompt_user"))


def test_same_seed_gives_the_same_plan_and_prompts(tiny_graph, real_notes, api_config):
    first = do_create_job(request=_request(), model_config=api_config, enqueue=False)
    second = do_create_job(request=_request(), model_config=api_config, enqueue=False)
    other = do_create_job(request=_request(seed=18), model_config=api_config, enqueue=False)
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
    job = do_create_job(request=_request(temperature=0.3), model_config=api_config, enqueue=False)
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
    assert meta["graph_version"] == job.graph_version and meta["seed"] == 17
    assert meta["tokens"] == {"prompt": 10, "completion": 20} and meta["latency_s"] == 0.01
    assert "symptom_recall" in meta["checks"]["scores"] and isinstance(meta["checks"]["passed"], bool)
    # A second delivery of the task finds nothing pending and writes nothing.
    GenerationJob.objects.filter(pk=job.pk).update(status="running")
    job_execute(job.pk)
    assert Note.objects.filter(metadata__job_id=job.pk).count() == 6 and len(backend.batches) == 3


def test_failures_duplicates_and_resume(tiny_graph, real_notes, api_config, monkeypatch, client, make_user):
    job = do_create_job(request=_request(), model_config=api_config, enqueue=False)
    keys = list(job.items.order_by("index").values_list("pk", flat=True))
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend(fail_keys=frozenset({str(keys[0])})))
    job_execute(job.pk)
    job.refresh_from_db()
    assert (job.status, job.ok, job.failed) == ("done", 5, 1)
    assert job.items.get(index=0).error == "injected failure"
    client.force_login(make_user("researcher"))
    page = client.get(reverse("generation:job", kwargs={"pk": job.pk})).content.decode()
    assert 'data-testid="item-errors"' in page and "injected failure" in page and 'data-testid="resume"' in page
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend())
    monkeypatch.setattr(jobs, "job_enqueue", lambda job: None)
    do_resume_job(job=job)
    job_execute(job.pk)
    job.refresh_from_db()
    assert (job.status, job.ok, job.failed) == ("done", 6, 0)

    same_text = do_create_job(request=_request(seed=99), model_config=api_config, enqueue=False)
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend(text=NOTE_TEXT.format(i="same")))
    job_execute(same_text.pk)
    same_text.refresh_from_db()
    assert same_text.status == "done" and same_text.skipped >= 4 and same_text.ok <= 2
    assert "duplicate" in same_text.items.filter(status="skipped").first().error


def test_nothing_ran_means_failed(tiny_graph, real_notes, api_config, monkeypatch):
    job = do_create_job(request=_request(), model_config=api_config, enqueue=False)
    keys = frozenset(str(pk) for pk in job.items.values_list("pk", flat=True))
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend(fail_keys=keys))
    job_execute(job.pk)
    job.refresh_from_db()
    assert job.status == "failed" and job.failed == 6 and job.error


def test_cancel_between_batches_and_budget_cap(tiny_graph, real_notes, api_config, monkeypatch):
    job = do_create_job(request=_request(), model_config=api_config, enqueue=False)
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend(
        on_batch=lambda n: do_cancel_job(job=job) if n == 1 else None))
    job_execute(job.pk)
    job.refresh_from_db()
    assert job.status == "cancelled" and job.ok == 2 and job.items.filter(status="pending").count() == 4

    capped = do_create_job(request=_request(), model_config=api_config, enqueue=False, budget_cap=Decimal("0.05"))
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend(cost=0.01))
    job_execute(capped.pk)
    capped.refresh_from_db()
    assert capped.status == "done" and capped.ok == 4 and capped.cost == Decimal("0.04")
    assert capped.skipped == 2 and "budget cap" in capped.error


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
    job = do_create_job(request=_request(budget=2, categories=["J06"]), model_config=api_config, enqueue=False)
    monkeypatch.setattr(jobs, "backend_for", lambda config: FakeBackend(text="Кашель\x00 и насморк у пациента."))
    job_execute(job.pk)
    job.refresh_from_db()
    assert job.ok == 1 and job.skipped == 1  # the second identical text collides on the content hash
    assert Note.objects.get(metadata__job_id=job.pk).text == "Кашель и насморк у пациента."

    Note.objects.filter(origin="real").update(text="слово " * 1300)
    long_job = do_create_job(request=_request(budget=2, categories=["J06"], min_words=1), model_config=api_config,
                             enqueue=False)
    assert long_job.skipped == 2 and "prompt too long" in long_job.items.first().error


def test_resume_refuses_a_live_job_and_accepts_a_stalled_one(tiny_graph, real_notes, api_config, monkeypatch):
    sent = []
    monkeypatch.setattr(jobs, "job_enqueue", lambda job: sent.append(job.pk))
    job = do_create_job(request=_request(), model_config=api_config, enqueue=False)
    GenerationJob.objects.filter(pk=job.pk).update(status="running")
    assert do_resume_job(job=job).status == "running" and sent == []
    GenerationJob.objects.filter(pk=job.pk).update(updated_at=timezone.now() - timedelta(minutes=6))
    job.refresh_from_db()
    assert job.stalled and do_resume_job(job=job).status == "queued" and sent == [job.pk]
