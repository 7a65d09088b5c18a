"""Browse pages and DRF endpoints over a small graph; permissions by role."""

from __future__ import annotations

import pytest
from django.urls import reverse

from graph.selectors import generation_url_for

pytestmark = pytest.mark.django_db


@pytest.fixture
def researcher_client(client, make_user, small_graph):
    client.force_login(make_user("researcher"))
    return client


def test_search_page_and_htmx_partial(researcher_client):
    page = researcher_client.get(reverse("graph:search"))
    assert page.status_code == 200 and b"graph-search" in page.content
    partial = researcher_client.get(reverse("graph:search"), {"q": "J06"}, HTTP_HX_REQUEST="true")
    body = partial.content.decode()
    assert "<html" not in body and "J06.9" in body and "J00-J06" in body
    russian = researcher_client.get(reverse("graph:search"), {"q": "кашель"}, HTTP_HX_REQUEST="true").content.decode()
    assert "сухой кашель" in russian
    english = researcher_client.get(reverse("graph:search"), {"q": "pneumonia"}, HTTP_HX_REQUEST="true")
    assert "J18" in english.content.decode()


def test_code_page(researcher_client):
    body = researcher_client.get(reverse("graph:code", kwargs={"key": "J06"})).content.decode()
    assert "J00-J06" in body and "J06.9" in body and "кашель" in body
    assert 'data-testid="related"' in body
    # the action appears once the generation issue wires generation:new, and only then
    assert ("generate-notes" in body) == (generation_url_for("J06") is not None)
    assert researcher_client.get(reverse("graph:code", kwargs={"key": "J99.99"})).status_code == 404
    assert researcher_client.get(reverse("graph:code", kwargs={"key": "nonsense"})).status_code == 404


def test_symptom_neighbourhood_and_stats_pages(researcher_client):
    symptom = researcher_client.get(reverse("graph:symptom", kwargs={"key": "кашель"}))
    assert symptom.status_code == 200 and "J06" in symptom.content.decode()
    view = researcher_client.get(reverse("graph:neighbourhood", kwargs={"label": "Category", "key": "J06"}))
    assert view.status_code == 200 and b"cytoscape.min.js" in view.content
    stats = researcher_client.get(reverse("graph:stats")).content.decode()
    assert "HAS_SYMPTOM" in stats and "test-small" in stats and "category-weights" in stats


def test_api_endpoints(researcher_client):
    search = researcher_client.get("/api/graph/search/", {"q": "j06"}).json()
    assert search["results"][0]["key"] == "J06"
    code = researcher_client.get("/api/graph/code/J06/").json()
    assert code["symptoms"][0]["count"] >= code["symptoms"][-1]["count"]
    assert [b["key"] for b in code["breadcrumbs"]] == ["X", "J00-J06"]
    symptom = researcher_client.get("/api/graph/symptom/кашель/").json()
    assert any(d["key"] == "J06" for d in symptom["diseases"])
    hood = researcher_client.get("/api/graph/neighbourhood/Category/J06/").json()
    assert hood["centre"] == "Category:J06" and len(hood["nodes"]) > 5
    stats = researcher_client.get("/api/graph/stats/").json()
    assert stats["counts"]["nodes"]["Symptom"] == 219 and len(stats["categories"]) == 105
    assert researcher_client.get("/api/graph/code/Q99.9/").status_code == 404


@pytest.mark.parametrize(("role", "browse", "manage"), [
    ("physician", 403, 403), ("curator", 200, 403), ("researcher", 200, 403), ("admin", 200, 200)])
def test_permissions(client, make_user, graph_store, role, browse, manage):
    client.force_login(make_user(role))
    assert client.get(reverse("graph:search")).status_code == browse
    assert client.get("/api/graph/search/?q=x").status_code == browse
    assert client.get(reverse("graph:import_upload")).status_code == manage


def test_anonymous_is_sent_to_login(client):
    assert client.get(reverse("graph:search")).status_code == 302
    assert client.get("/api/graph/search/?q=x").status_code == 403


def test_neighbourhood_keeps_the_hierarchy_before_symptoms(researcher_client):
    hood = researcher_client.get("/api/graph/neighbourhood/Category/J06/").json()
    ids = {node["id"] for node in hood["nodes"]}
    assert {"Block:J00-J06", "Code:J06.9", "Symptom:кашель"} <= ids and len(ids) == 41
