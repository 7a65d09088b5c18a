"""MKG enrichment: LLM-extracted symptoms become proposals; only accepted ones enter the graph."""

from __future__ import annotations

import pytest
from django.urls import reverse

from generation.enrichment import (
    do_review_symptom_proposals,
    do_start_symptom_extraction,
    enrichment_run,
    symptoms_parse,
)
from generation.models import ModelConfig, SymptomProposal
from generation.tasks import run_symptom_extraction
from medsyn_site.core.audit import audit_trail
from medsyn_site.core.models import AuditEvent, AuditRecord


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
    counts = enrichment_run(model_config=api_config, categories=["J06"], notes_per_category=3)
    assert counts == {"notes": 3, "failed": 0, "proposals_new": 3}
    assert all(r["body"]["temperature"] == 0.2 for r in openai_server.requests)
    proposals = {p.symptom_key: p for p in SymptomProposal.objects.all()}
    assert {k: p.support for k, p in proposals.items()} == {"кашель": 2, "осиплость голоса": 2, "чихание": 1}

    # A rerun (a redelivered task) counts no note twice.
    openai_server.replies.extend(["кашель", "кашель", "кашель"])
    enrichment_run(model_config=api_config, categories=["J06"], notes_per_category=3)
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
        chosen = do_start_symptom_extraction(actor=researcher, model_config=api_config, categories=[" m54", "J06", ""])
    assert chosen == ["J06", "M54"] and sent == [([api_config.pk, ["J06", "M54"], 20], "api")]
    [record] = audit_trail(api_config)
    assert (record.actor, record.action, record.extra) == (
        researcher, AuditEvent.START_SYMPTOM_EXTRACTION, {"categories": ["J06", "M54"], "notes_per_category": 20})

    client.force_login(researcher)
    for categories, message in (("J06.9, кашель", "Not ICD-10 categories (a letter and two digits): J06.9, кашель."),
                                (" , ", "Name at least one ICD-10 category.")):
        page = client.post(reverse("generation:enrichment"), {"action": "extract", "model_config": api_config.pk,
                                                             "categories": categories}, follow=True)
        assert message in page.content.decode()
    assert len(sent) == 1 and audit_trail(api_config).count() == 1


def test_failed_calls_are_counted_not_fatal(api_config, openai_server, real_notes):
    openai_server.persistent_status = 500
    counts = enrichment_run(model_config=api_config, categories=["J06"], notes_per_category=2)
    assert counts["failed"] == 2 and SymptomProposal.objects.count() == 0


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
