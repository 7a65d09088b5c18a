"""MKG enrichment: LLM-extracted symptoms become proposals; only accepted ones enter the graph."""

from __future__ import annotations

import pytest
from django.urls import reverse

from generation import enrichment, jobs
from generation.enrichment import (
    do_cancel_symptom_extraction,
    do_review_symptom_proposals,
    do_start_symptom_extraction,
    symptom_extraction_execute,
    symptoms_parse,
)
from generation.models import ModelConfig, SymptomExtractionJob, SymptomProposal
from generation.tasks import run_symptom_extraction
from medsyn_site.core.audit import audit_trail
from medsyn_site.core.models import AuditEvent, AuditRecord


def extract(config: ModelConfig, categories: list[str], notes_per_category: int) -> SymptomExtractionJob:
    """An extraction started (not sent to a worker) and run here, as its worker runs it."""
    job = do_start_symptom_extraction(actor=None, model_config=config, categories=categories,
                                      notes_per_category=notes_per_category, enqueue=False)
    symptom_extraction_execute(job.pk)
    job.refresh_from_db()
    return job


def test_symptoms_parse_keeps_symptoms_only():
    answer = "Симптомы:\n- Кашель.\n2) насморк\n• Температура 38;\n\nкашель\nHere is the list\n" + "x" * 100
    assert symptoms_parse(answer) == ["кашель", "насморк", "температура 38"]


@pytest.fixture
def api_config(db, openai_server):
    return ModelConfig.objects.create(name="fake-api", backend=ModelConfig.Backend.OPENAI, base_url=openai_server.url,
                                      api_model="gpt-test", max_retries=1, batch_size=2)


def test_extraction_then_review_publishes_only_accepted_edges(api_config, openai_server, tiny_graph, real_notes,
                                                              make_user):
    openai_server.replies.extend(["- кашель\n- осиплость голоса", "кашель\nчихание", "осиплость голоса"])
    job = extract(api_config, ["J06"], 3)
    assert (job.status, job.progress_done, job.progress_total, job.failed, job.proposals_new) == ("done", 3, 3, 0, 3)
    assert sorted(job.notes_read) == sorted(job.note_ids) and len(job.note_ids) == 3
    assert all(r["body"]["temperature"] == 0.2 for r in openai_server.requests)
    proposals = {p.symptom_key: p for p in SymptomProposal.objects.all()}
    assert {k: p.support for k, p in proposals.items()} == {"кашель": 2, "осиплость голоса": 2, "чихание": 1}

    # A redelivered task finds every note read and asks nothing; a new extraction counts no note twice.
    SymptomExtractionJob.objects.filter(pk=job.pk).update(status="running")
    asked = len(openai_server.requests)
    symptom_extraction_execute(job.pk)
    assert len(openai_server.requests) == asked and SymptomExtractionJob.objects.get(pk=job.pk).proposals_new == 3
    openai_server.replies.extend(["кашель", "кашель", "кашель"])
    extract(api_config, ["J06"], 3)
    assert SymptomProposal.objects.get(symptom_key="кашель").support == 3

    researcher = make_user("researcher")
    before = tiny_graph.run("MATCH (:Category {key: 'J06'})-[e:HAS_SYMPTOM {source: 'llm'}]->() RETURN count(e) AS n")
    assert before == [{"n": 0}]
    do_review_symptom_proposals(actor=researcher, proposals=[proposals["чихание"]], accept=False)
    do_review_symptom_proposals(actor=researcher, proposals=[proposals["осиплость голоса"],
                                                             SymptomProposal.objects.get(symptom_key="кашель")],
                                accept=True)
    rows = tiny_graph.run("MATCH (:Category {key: 'J06'})-[e:HAS_SYMPTOM {source: 'llm'}]->(s:Symptom) "
                          "RETURN s.key AS symptom, e.count AS count ORDER BY symptom")
    assert rows == [{"symptom": "кашель", "count": 3}, {"symptom": "осиплость голоса", "count": 2}]
    statuses = dict(SymptomProposal.objects.values_list("symptom_key", "status"))
    assert statuses == {"кашель": "accepted", "осиплость голоса": "accepted", "чихание": "rejected"}
    assert SymptomProposal.objects.get(symptom_key="кашель").graph_version
    records = {r.object_id: r for r in AuditRecord.objects.filter(object_type="SymptomProposal")}
    assert {proposals[key].symptom_key: (r.actor, r.action, r.from_state, r.to_state)
            for key, r in ((p.symptom_key, records[str(p.pk)]) for p in proposals.values())} == {
        "чихание": (researcher, AuditEvent.REJECT_SYMPTOM_PROPOSAL, "proposed", "rejected"),
        "кашель": (researcher, AuditEvent.ACCEPT_SYMPTOM_PROPOSAL, "proposed", "accepted"),
        "осиплость голоса": (researcher, AuditEvent.ACCEPT_SYMPTOM_PROPOSAL, "proposed", "accepted")}
    cough = records[str(proposals["кашель"].pk)].extra
    assert cough == {"category": "J06", "symptom": "кашель", "support": 3,
                     "graph_version": SymptomProposal.objects.get(symptom_key="кашель").graph_version}
    # Reviewing again changes nothing and records nothing.
    assert do_review_symptom_proposals(actor=researcher, proposals=list(SymptomProposal.objects.all()),
                                       accept=True) == 0
    assert AuditRecord.objects.filter(object_type="SymptomProposal").count() == 3


def test_starting_an_extraction_is_audited_and_queued_once_committed(api_config, make_user, monkeypatch, client,
                                                                    django_capture_on_commit_callbacks):
    sent = []
    monkeypatch.setattr(run_symptom_extraction, "apply_async",
                        lambda args, queue, **options: sent.append((args, queue)))
    researcher = make_user("researcher")
    with django_capture_on_commit_callbacks(execute=True):
        job = do_start_symptom_extraction(actor=researcher, model_config=api_config, categories=[" m54", "J06", ""])
    assert (job.categories, job.status, job.created_by) == (["J06", "M54"], "queued", researcher)
    assert sent == [([job.pk], "api")]
    [record] = audit_trail(api_config)
    assert (record.actor, record.action, record.extra) == (
        researcher, AuditEvent.START_SYMPTOM_EXTRACTION,
        {"categories": ["J06", "M54"], "notes_per_category": 20, "job_id": job.pk})

    client.force_login(researcher)
    for categories, message in (("J06.9, кашель", "Not ICD-10 categories (a letter and two digits): J06.9, кашель."),
                                (" , ", "Name at least one ICD-10 category.")):
        page = client.post(reverse("generation:enrichment"), {"action": "extract", "model_config": api_config.pk,
                                                             "categories": categories}, follow=True)
        assert message in page.content.decode()
    assert len(sent) == 1 and audit_trail(api_config).count() == 1


def test_failed_calls_are_counted_not_fatal(api_config, openai_server, real_notes):
    openai_server.persistent_status = 500
    job = extract(api_config, ["J06"], 2)
    assert (job.status, job.failed, job.progress_done) == ("done", 2, 2) and SymptomProposal.objects.count() == 0


@pytest.fixture
def serial_config(api_config):
    """One request at a time and three notes a batch: the model answers for the notes of a batch one by one."""
    api_config.concurrency, api_config.batch_size = 1, 3
    api_config.save()
    return api_config


def test_each_note_s_proposals_are_committed_as_it_is_read(serial_config, openai_server, real_notes, monkeypatch):
    openai_server.replies.extend(["кашель", "чихание", "осиплость голоса"])
    seen = []
    record = enrichment.note_read_record

    def watched(job, note, result):
        created = record(job, note, result)
        seen.append((len(openai_server.requests), SymptomExtractionJob.objects.get(pk=job.pk).progress_done,
                     sorted(SymptomProposal.objects.values_list("symptom_key", flat=True))))
        return created

    monkeypatch.setattr(enrichment, "note_read_record", watched)
    job = extract(serial_config, ["J06"], 3)
    # one batch of three notes; each note's proposals and progress were written before the next note was asked for
    assert seen == [(1, 1, ["кашель"]), (2, 2, ["кашель", "чихание"]),
                    (3, 3, ["кашель", "осиплость голоса", "чихание"])]
    assert (job.status, job.proposals_new) == ("done", 3)


def cancel_after_the_first_note(monkeypatch) -> None:
    """The extraction is cancelled as soon as its first note's proposals are committed."""
    record = enrichment.note_read_record

    def cancel_after_the_first(job, note, result):
        created = record(job, note, result)
        do_cancel_symptom_extraction(job=job, actor=None)
        return created

    monkeypatch.setattr(enrichment, "note_read_record", cancel_after_the_first)


def test_cancel_stops_the_running_extraction_after_the_note_being_read(serial_config, openai_server, real_notes,
                                                                        monkeypatch):
    monkeypatch.setattr(jobs, "PROGRESS_INTERVAL_SECONDS", 0)  # the watch checks after every note
    openai_server.replies.extend(["кашель", "чихание", "осиплость голоса"])
    cancel_after_the_first_note(monkeypatch)
    job = extract(serial_config, ["J06"], 3)
    assert (job.status, job.progress_done, len(job.notes_read)) == ("cancelled", 1, 1)
    assert len(openai_server.requests) == 1  # the other two notes of the batch were never sent
    assert list(SymptomProposal.objects.values_list("symptom_key", flat=True)) == ["кашель"]
    [record] = audit_trail(job)
    assert (record.action, record.from_state, record.to_state) == (AuditEvent.CANCEL_SYMPTOM_EXTRACTION, "running",
                                                                   "cancelled")


def test_the_enrichment_page_polls_the_running_extraction_and_its_proposals(api_config, openai_server, real_notes,
                                                                             client, make_user):
    client.force_login(make_user("researcher"))
    job = do_start_symptom_extraction(actor=None, model_config=api_config, categories=["J06"], enqueue=False)
    SymptomExtractionJob.objects.filter(pk=job.pk).update(status="running", progress_done=1, progress_total=4)
    SymptomProposal.objects.create(category="J06", symptom_key="кашель", symptom="кашель", note_ids=[1])
    page = client.get(reverse("generation:enrichment")).content.decode()
    assert 'hx-trigger="every 1s"' in page and 'data-testid="extraction-status"' in page
    live = client.get(reverse("generation:enrichment"), HTTP_HX_REQUEST="true")
    body = live.content.decode()
    assert live.status_code == 200 and "<html" not in body and "1 of 4 notes" in body
    assert 'aria-valuenow="25"' in body and 'id="proposal-' in body and "hx-preserve" in body
    assert client.post(reverse("generation:enrichment_cancel", args=[job.pk])).status_code == 302
    finished = client.get(reverse("generation:enrichment"), HTTP_HX_REQUEST="true")
    assert finished.status_code == 286 and "Cancelled" in finished.content.decode()  # htmx stops polling
    assert 'hx-trigger="every 1s"' not in client.get(reverse("generation:enrichment")).content.decode()
    refused = client.post(reverse("generation:enrichment_cancel", args=[job.pk]), follow=True)
    assert "has already finished" in refused.content.decode()


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_enrichment_page_accepts_a_proposal(make_user, live_server, page, live_login, tiny_graph):
    from playwright.sync_api import expect

    SymptomProposal.objects.create(category="J06", symptom_key="чихание", symptom="чихание", note_ids=[1, 2])
    SymptomProposal.objects.create(category="J06", symptom_key="зуд", symptom="зуд", note_ids=[3])
    live_login(make_user("researcher").username)
    page.goto(f"{live_server.url}/generation/")
    page.click("text=Graph enrichment")
    page.check("input[aria-label='чихание']")
    page.click("text=Accept selected")
    expect(page.locator("[data-testid=proposals]")).not_to_contain_text("чихание")
    expect(page.locator("[data-testid=proposals]")).to_contain_text("зуд")
    assert SymptomProposal.objects.get(symptom_key="чихание").status == "accepted"
    assert tiny_graph.run("MATCH ()-[e:HAS_SYMPTOM {source: 'llm'}]->(s:Symptom {key: 'чихание'}) "
                          "RETURN e.count AS c") == [{"c": 2}]


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_the_enrichment_page_shows_proposals_as_notes_are_read(api_config, real_notes, tiny_graph, make_user,
                                                               live_server, page, live_login):
    from playwright.sync_api import expect

    from generation.backends.base import GenerationResult
    from generation.enrichment import note_read_record

    job = do_start_symptom_extraction(actor=None, model_config=api_config, categories=["J06"], notes_per_category=3,
                                      enqueue=False)
    notes = [note for note in real_notes if note.icd_category == "J06"]
    SymptomExtractionJob.objects.filter(pk=job.pk).update(status="running", note_ids=[n.pk for n in notes],
                                                          progress_total=3)
    live_login(make_user("researcher").username)
    page.goto(f"{live_server.url}{reverse('generation:enrichment')}")
    proposals = page.locator("[data-testid=proposals]")
    expect(page.locator("[data-testid=extraction-status]")).to_have_text("Running")
    expect(proposals).to_contain_text("Nothing to review.")

    note_read_record(job, notes[0], GenerationResult(key=str(notes[0].pk), text="кашель\nнасморк"))
    expect(proposals).to_contain_text("насморк")  # no reload: the page polls while the extraction runs
    expect(page.locator("[data-testid=extraction] [data-testid=job-count]")).to_have_text("1 of 3 notes")
    page.check("input[aria-label='кашель']")
    note_read_record(job, notes[1], GenerationResult(key=str(notes[1].pk), text="чихание"))
    expect(proposals).to_contain_text("чихание")
    expect(page.locator("input[aria-label='кашель']")).to_be_checked()  # a choice survives the refresh
    SymptomExtractionJob.objects.get(pk=job.pk).mark_finished("done")
    expect(page.locator("[data-testid=extraction-status]")).to_have_text("Done")
    page.click("text=Accept selected")
    assert SymptomProposal.objects.get(symptom_key="кашель").status == "accepted"
