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
    assert client.get("/api/graph/search/?q=x").status_code == 401  # with WWW-Authenticate: Token


def test_neighbourhood_keeps_the_hierarchy_before_symptoms(researcher_client):
    hood = researcher_client.get("/api/graph/neighbourhood/Category/J06/").json()
    ids = {node["id"] for node in hood["nodes"]}
    assert {"Block:J00-J06", "Code:J06.9", "Symptom:кашель"} <= ids and len(ids) == 41


# --- Crafted input (issue 11): validated before it reaches FalkorDB --------------------------------------------------

BAD_QUERIES = ["%00", "a%00b", "%1B%5B31m", "a%C2%85b", "a" * 201]


@pytest.mark.parametrize("query", BAD_QUERIES, ids=["nul", "nul-inside", "escape", "c1-control", "too-long"])
def test_a_search_with_a_control_character_or_too_long_is_refused_with_the_reason(researcher_client, query):
    """HTML: the search page with the reason (400; 200 for htmx, which shows no 4xx answer); API: 400 by field."""
    page = researcher_client.get(f"/graph/?q={query}")
    assert page.status_code == 400 and 'data-testid="search-error"' in page.content.decode()
    assert "This search cannot be run" in page.content.decode() and "\x00" not in page.content.decode()
    partial = researcher_client.get(f"/graph/?q={query}", HTTP_HX_REQUEST="true")
    assert partial.status_code == 200 and 'data-testid="search-error"' in partial.content.decode()
    api = researcher_client.get(f"/api/graph/search/?q={query}")
    assert api.status_code == 400 and list(api.json()) == ["q"]
    # the store still answers the next search
    assert researcher_client.get("/api/graph/search/?q=J06").json()["results"][0]["key"] == "J06"


BAD_KEYS = ["J0%00", "%00", "J06%00.9", "%E2%80%8B%01", "a" * 201]


@pytest.mark.parametrize("key", BAD_KEYS, ids=["code-nul", "nul", "nul-inside", "control", "too-long"])
def test_a_node_url_with_a_control_character_or_too_long_is_not_found(researcher_client, key):
    """A key no node can have is a 404 (HTML and API), as any unknown key: no query reaches the store."""
    for url in (f"/graph/code/{key}/", f"/graph/symptom/{key}/", f"/graph/node/Category/{key}/",
                f"/graph/node/Symptom/{key}/", f"/api/graph/code/{key}/", f"/api/graph/symptom/{key}/",
                f"/api/graph/neighbourhood/Symptom/{key}/", f"/api/graph/neighbourhood/Category/{key}/"):
        assert researcher_client.get(url).status_code == 404, url


@pytest.mark.parametrize("digits", ["%C2%B2", "%D9%A3", "1%C2%B2"], ids=["superscript-two", "arabic-three", "mixed"])
def test_unicode_digits_in_the_integer_path_parameter_are_not_found(client, make_user, graph_store, digits):
    """The graph's only integer parameter is the import job's id (<int:pk>, ASCII digits only): a 404, never a 500.
    The graph API takes no integer parameter."""
    client.force_login(make_user("admin"))
    assert client.get(f"/graph/import/{digits}/").status_code == 404


# --- OpenAPI (issue 14): the documented answers are what the API returns ----------------------------------------------

def _json_schema(node, components: dict):
    """An OpenAPI 3.0 schema as JSON Schema: $refs resolved, `nullable` as a null type, and objects with documented
    properties closed (an undocumented field in an answer is a mismatch)."""
    if isinstance(node, list):
        return [_json_schema(item, components) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _json_schema(components[node["$ref"].rsplit("/", 1)[-1]], components)
    schema = {key: _json_schema(value, components) for key, value in node.items()}
    if schema.pop("nullable", False):
        schema = {"anyOf": [schema, {"type": "null"}]}
    elif schema.get("type") == "object" and "properties" in schema:
        schema.setdefault("additionalProperties", False)
    return schema


NULLABLE_ROWS = [
    {"kind": "node", "label": "Drug", "key": "unnamed-drug"},
    {"kind": "node", "label": "Symptom", "key": "безымянный симптом"},
    {"kind": "edge", "type": "TREATED_BY", "from": {"label": "Category", "key": "J06"},
     "to": {"label": "Drug", "key": "unnamed-drug"}},
    {"kind": "edge", "type": "HAS_SYMPTOM", "from": {"label": "Category", "key": "J06"},
     "to": {"label": "Symptom", "key": "безымянный симптом"}, "source": "curated"},
]


def test_every_graph_answer_matches_its_documented_schema_with_nulls(researcher_client, graph_store, tmp_path):
    """Against the real graph, with nodes that lack a name and an edge without a count (null in the answers)."""
    import jsonschema

    from graph.importers import generic_payload
    from graph.services import graph_import

    from .conftest import jsonl_write

    path = jsonl_write(tmp_path / "unnamed.jsonl", NULLABLE_ROWS)
    graph_import(source="generic", files=[path], parse=lambda: generic_payload(path), check_endpoints=True,
                 store=graph_store)
    schema = researcher_client.get("/api/schema/", {"format": "json"}).json()
    components = schema["components"]["schemas"]
    answers = {
        "/api/graph/search/": "/api/graph/search/?q=J06",
        "/api/graph/code/{key}/": "/api/graph/code/J06/",
        "/api/graph/symptom/{key}/": "/api/graph/symptom/безымянный симптом/",
        "/api/graph/neighbourhood/{label}/{key}/": "/api/graph/neighbourhood/Category/J06/",
        "/api/graph/stats/": "/api/graph/stats/",
    }
    for path_template, url in answers.items():
        documented = schema["paths"][path_template]["get"]["responses"]["200"]["content"]["application/json"]
        response_schema = _json_schema(documented["schema"], components)
        assert "properties" in response_schema, f"{path_template}: the answer's fields are not documented"
        answer = researcher_client.get(url)
        assert answer.status_code == 200, url
        jsonschema.validate(answer.json(), response_schema)
    code = researcher_client.get("/api/graph/code/J06/").json()
    assert {"key": "unnamed-drug", "name": None, "groups": []} in code["drugs"]
    assert any(s["key"] == "безымянный симптом" and s["name"] is None and s["count"] is None for s in code["symptoms"])
    hit = researcher_client.get("/api/graph/search/?q=J06.9").json()["results"][0]  # no Russian name shipped
    assert hit["key"] == "J06.9" and hit["name_ru"] is None
    params = schema["paths"]["/api/graph/search/"]["get"]["parameters"]
    assert [(p["name"], p["schema"].get("maxLength")) for p in params] == [("q", 200)]
