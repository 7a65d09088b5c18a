"""Checks a real API response against the OpenAPI schema the project serves (/api/schema/): the status must be a
documented one, and the body must have exactly the documented fields (none missing, none undocumented), of the
documented types, null only where documented nullable."""

from __future__ import annotations

from typing import Any

import jsonschema


def api_schema(client) -> dict:
    response = client.get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def _strict(node: Any, components: dict) -> Any:
    """The OpenAPI 3.0 schema as JSON Schema: references resolved, `nullable` as a null alternative, and every
    object closed and complete (a response body holds each documented field, and only those)."""
    if isinstance(node, list):
        return [_strict(item, components) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return _strict(components[node["$ref"].rsplit("/", 1)[1]], components)
    out = {}
    for key, value in node.items():
        if key == "properties":
            out[key] = {name: _strict(sub, components) for name, sub in value.items()}
        elif key != "nullable":
            out[key] = _strict(value, components)
    if "properties" in out:
        out.setdefault("additionalProperties", False)
        out["required"] = sorted(out["properties"])
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def response_check(schema: dict, path: str, method: str, response) -> None:
    """Assert that `response` (a test client's) is documented for `path` (the schema's template, e.g.
    /api/review/releases/{id}/) and `method`, status and body alike."""
    operation = schema["paths"][path][method.lower()]
    documented = operation["responses"]
    status = str(response.status_code)
    assert status in documented, f"{method} {path} answered {status}; documented: {sorted(documented)}"
    body = documented[status]["content"]["application/json"]["schema"]
    jsonschema.validate(response.json(), _strict(body, schema["components"]["schemas"]))
