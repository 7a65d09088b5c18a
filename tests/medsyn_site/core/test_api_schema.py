"""The OpenAPI schema documents what the API answers: every error status the exception handler gives, nullable
fields as nullable, and the release preview as its own type (the hardening issue, item 14)."""

from __future__ import annotations

import pytest
from drf_spectacular.generators import SchemaGenerator

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture(scope="module")
def schema() -> dict:
    return SchemaGenerator().get_schema(request=None, public=True)


def _operations(schema: dict):
    for path, item in schema["paths"].items():
        for method in METHODS:
            if method in item:
                yield path, method, item[method]


def test_every_operation_documents_the_errors_it_can_answer(schema):
    operations = list(_operations(schema))
    assert len(operations) >= 25
    for path, method, operation in operations:
        codes = set(operation["responses"])
        assert {"400", "401", "403", "429", "503"} <= codes, (method, path, codes)
        assert ("404" in codes) == ("{" in path), (method, path)
        assert ("409" in codes) == (method != "get"), (method, path)
        assert any(code.startswith("2") for code in codes), (method, path)


def test_an_unavailable_answer_names_the_component(schema):
    body = schema["paths"]["/api/review/releases/"]["post"]["responses"]["503"]["content"]["application/json"]
    name = body["schema"]["$ref"].rsplit("/", 1)[1]
    assert set(schema["components"]["schemas"][name]["properties"]) == {"detail", "component"}


def test_the_release_preview_is_documented_as_what_it_returns(schema, client, make_user):
    responses = schema["paths"]["/api/review/releases/"]["post"]["responses"]
    preview = responses["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    documented = set(schema["components"]["schemas"][preview]["properties"])
    client.force_login(make_user("curator"))
    answer = client.post("/api/review/releases/", {"name": "x", "preview": True}, content_type="application/json")
    assert answer.status_code == 200 and set(answer.json()) == documented
    assert responses["201"]["content"]["application/json"]["schema"]["$ref"].endswith("/Release")


def test_a_job_speed_is_documented_as_nullable(schema):
    speeds = [component["properties"]["items_per_second"] for component in schema["components"]["schemas"].values()
              if "items_per_second" in component.get("properties", {})]
    assert speeds and all(speed.get("nullable") is True for speed in speeds)
