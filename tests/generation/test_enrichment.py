"""MKG enrichment: LLM-extracted symptoms become proposals; only accepted ones enter the graph."""

from __future__ import annotations

import pytest

from generation.enrichment import do_review_symptom_proposals, enrichment_run, symptoms_parse
from generation.models import ModelConfig, SymptomProposal


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
    # Reviewing again changes nothing.
    assert do_review_symptom_proposals(actor=researcher, proposals=list(SymptomProposal.objects.all()),
                                       accept=True) == 0


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
