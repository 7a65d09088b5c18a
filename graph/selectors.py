"""Reads for the browse pages and the API. Each function is a few indexed Cypher lookups."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.utils.translation import gettext as _

from medsyn_site.core.icd10 import icd_label_for_key

from .models import GraphVersion, ImportJob
from .names import code_display_name
from .payload import graph_counts
from .schema import (
    ICD_LABELS,
    NODE_LABELS,
    QUERY_MAX_LENGTH,
    VERSION_LABEL,
    graph_value_problem,
    search_text,
    symptom_key,
)
from .store import GraphStore

SEARCH_LIMIT = 20


_CODE_PREFIX = re.compile(r"^[A-Z][0-9A-Z.\-]{0,7}$")


def search_query_check(query: str) -> str:
    """The query, stripped; ValidationError when it cannot be searched for (graph_value_problem)."""
    query = query.strip()
    if (problem := graph_value_problem(query, max_length=QUERY_MAX_LENGTH)) is not None:
        raise ValidationError(_("This search cannot be run: %(problem)s.") % {"problem": problem}, code="invalid")
    return query


def _key_usable(key: str) -> bool:
    """A key from a URL that can name a node: anything else is simply not in the graph (a 404, not a query)."""
    return graph_value_problem(key) is None


def graph_search(store: GraphStore, query: str, *, limit: int = SEARCH_LIMIT) -> list[dict[str, Any]]:
    """Codes by code prefix or by name (English or Russian), and symptoms by name; code hits first.

    A query with a control character or longer than QUERY_MAX_LENGTH raises ValidationError (search_query_check).
    """
    text = search_text(search_query_check(query))
    if not text:
        return []
    hits: list[dict[str, Any]] = []
    seen: set[tuple[str, str]] = set()
    fields = "n.key AS key, n.name AS name, n.name_ru AS name_ru"

    def add(rows: list[dict[str, Any]], kind: str) -> None:
        for row in rows:
            if (row["label"], row["key"]) not in seen and len(hits) < limit:
                seen.add((row["label"], row["key"]))
                hits.append({**row, "kind": kind})

    prefix = text.upper()
    if _CODE_PREFIX.match(prefix):
        add(store.run(" UNION ALL ".join(
            f"MATCH (n:{label}) WHERE n.key STARTS WITH $p RETURN '{label}' AS label, {fields} ORDER BY key LIMIT $l"
            for label in ("Category", "Code", "Block")), {"p": prefix, "l": limit}), "code")
    add(store.run(f"MATCH (n:Symptom) WHERE n.search_text CONTAINS $q RETURN 'Symptom' AS label, {fields} "
                  "ORDER BY size(key), key LIMIT $l", {"q": text, "l": limit}), "symptom")
    if len(hits) < limit:
        add(store.run(" UNION ALL ".join(
            f"MATCH (n:{label}) WHERE n.search_text CONTAINS $q RETURN '{label}' AS label, {fields} "
            "ORDER BY key LIMIT $l" for label in ("Category", "Code", "Block", "Chapter")),
            {"q": text, "l": limit}), "code")
    return hits


@dataclass(frozen=True)
class CodeDetail:
    label: str
    key: str
    name: str
    name_ru: str | None
    breadcrumbs: list[dict[str, Any]]
    children: list[dict[str, Any]]
    symptoms: list[dict[str, Any]]
    n_symptoms: int
    drugs: list[dict[str, Any]]
    related: list[dict[str, Any]]
    n_notes: int
    n_examples: int


SYMPTOM_LIMIT = 50


def code_detail(store: GraphStore, key: str, *, symptom_limit: int = SYMPTOM_LIMIT) -> CodeDetail | None:
    """A code's page: hierarchy, its most frequent symptoms (top symptom_limit), drugs, related codes."""
    key = key.strip().upper()
    label = icd_label_for_key(key) if _key_usable(key) else None
    if label is None:
        return None
    rows = store.run(f"MATCH (n:{label} {{key: $k}}) RETURN n AS n", {"k": key})
    if not rows:
        return None
    node = rows[0]["n"]
    ancestors = store.run(
        f"MATCH (n:{label} {{key: $k}})-[:CHILD_OF*1..5]->(a) RETURN labels(a)[0] AS label, a.key AS key, "
        "a.name AS name", {"k": key})
    order = {name: i for i, name in enumerate(ICD_LABELS)}
    breadcrumbs = sorted(ancestors, key=lambda a: order.get(a["label"], 9))
    children = store.run(
        f"MATCH (c)-[:CHILD_OF]->(n:{label} {{key: $k}}) RETURN labels(c)[0] AS label, c.key AS key, "
        "c.name AS name, c.name_ru AS name_ru ORDER BY c.key", {"k": key})
    symptoms = store.run(
        f"MATCH (n:{label} {{key: $k}})-[e:HAS_SYMPTOM]->(s:Symptom) "
        "RETURN s.key AS key, s.name AS name, max(e.count) AS count, collect(e.source) AS sources "
        "ORDER BY count DESC, key LIMIT $l", {"k": key, "l": symptom_limit})
    n_symptoms = len(symptoms) if len(symptoms) < symptom_limit else store.run(
        f"MATCH (n:{label} {{key: $k}})-[:HAS_SYMPTOM]->(s:Symptom) RETURN count(DISTINCT s) AS c", {"k": key})[0]["c"]
    top = max((s["count"] or 0 for s in symptoms), default=0) or 1
    for s in symptoms:
        s["percent"] = round(100 * (s["count"] or 0) / top)
        s["sources"] = sorted(s["sources"])
    drugs = store.run(
        f"MATCH (n:{label} {{key: $k}})-[:TREATED_BY]->(d:Drug) OPTIONAL MATCH (d)-[:IN_GROUP]->(g:PharmGroup) "
        "RETURN d.key AS key, d.name AS name, collect(g.name) AS groups ORDER BY d.key", {"k": key})
    related = store.run(
        f"MATCH (n:{label} {{key: $k}})-[:HAS_SYMPTOM]->(s:Symptom)<-[:HAS_SYMPTOM]-(o) WHERE o.key <> $k "
        "RETURN labels(o)[0] AS label, o.key AS key, o.name AS name, o.name_ru AS name_ru, count(DISTINCT s) AS shared "
        "ORDER BY shared DESC, key LIMIT 15", {"k": key})
    return CodeDetail(label, key, node.get("name") or key, node.get("name_ru"), breadcrumbs, children, symptoms,
                      n_symptoms, drugs, related, int(node.get("n_notes") or 0), int(node.get("n_examples") or 0))


def symptom_detail(store: GraphStore, key: str) -> dict[str, Any] | None:
    if not _key_usable(key):
        return None
    key = symptom_key(key)
    rows = store.run("MATCH (s:Symptom {key: $k}) RETURN s.key AS key, s.name AS name", {"k": key})
    if not rows:
        return None
    diseases = store.run(
        "MATCH (s:Symptom {key: $k})<-[e:HAS_SYMPTOM]-(d) RETURN labels(d)[0] AS label, d.key AS key, "
        "d.name AS name, d.name_ru AS name_ru, max(e.count) AS count ORDER BY count DESC, key", {"k": key})
    top = max((d["count"] or 0 for d in diseases), default=0) or 1
    for d in diseases:
        d["percent"] = round(100 * (d["count"] or 0) / top)
    return {**rows[0], "diseases": diseases}


NEIGHBOUR_LIMIT = 40


def node_neighbourhood(store: GraphStore, label: str, key: str, *, limit: int = NEIGHBOUR_LIMIT
                       ) -> dict[str, Any] | None:
    """The node and its direct neighbours, cytoscape-ready: hierarchy, drugs and groups first, then the
    strongest symptom edges, up to limit neighbours. A node's name is the one to show (an ICD-10 node's in the
    interface language, graph.names), else its key. None for an unknown label or key."""
    if label not in NODE_LABELS or not _key_usable(key):
        return None
    rows = store.run(f"MATCH (n:{label} {{key: $k}}) RETURN n.key AS key, n.name AS name, n.name_ru AS name_ru",
                     {"k": key})
    if not rows:
        return None
    centre = f"{label}:{key}"
    nodes = {centre: {"id": centre, "label": label, "key": key, "name": _shown_name(label, rows[0]),
                      "centre": True}}
    edges = []
    neighbours = store.run(
        f"MATCH (n:{label} {{key: $k}})-[e]-(m) WHERE NOT m:{VERSION_LABEL} "
        "RETURN type(e) AS type, startNode(e) = n AS outgoing, labels(m)[0] AS label, m.key AS key, m.name AS name, "
        "m.name_ru AS name_ru, max(coalesce(e.count, 0)) AS count, "
        "min(CASE type(e) WHEN 'HAS_SYMPTOM' THEN 1 ELSE 0 END) AS rank "
        "ORDER BY rank, count DESC, key LIMIT $l", {"k": key, "l": limit})
    for row in neighbours:
        node_id = f"{row['label']}:{row['key']}"
        nodes.setdefault(node_id, {"id": node_id, "label": row["label"], "key": row["key"],
                                   "name": _shown_name(row["label"], row), "centre": False})
        source, target = (centre, node_id) if row["outgoing"] else (node_id, centre)
        edges.append({"id": f"{source}>{row['type']}>{target}", "source": source, "target": target,
                      "type": row["type"], "count": row["count"]})
    return {"centre": centre, "nodes": list(nodes.values()), "edges": edges}


def _shown_name(label: str, row: dict[str, Any]) -> str:
    if label in ICD_LABELS:
        return code_display_name(row["key"], name=row["name"], name_ru=row["name_ru"]) or row["key"]
    return row["name"] or row["key"]


def graph_stats(store: GraphStore) -> dict[str, Any]:
    from .sampling import category_budget, sampling_data_load

    versions = list(GraphVersion.objects.filter(status=GraphVersion.Status.PUBLISHED)[:20])
    return {"counts": graph_counts(store), "versions": versions,
            "categories": category_budget(sampling_data_load(store))}


@dataclass(frozen=True)
class GenerationTarget:
    """What "Generate notes" on a code's page plans for: the category (notes, examples and symptoms live on
    categories), whether a plan for it can produce notes, and why not when it cannot."""

    category: str | None  # None on a chapter or block
    url: str | None  # the new-job form for the category; None when nothing can be generated
    why_not: str  # "" when url is set


def generation_target(store: GraphStore, detail: CodeDetail) -> GenerationTarget:
    """A category can be planned when it has example notes or symptoms (its own or its codes', as sampling reads
    them); a code (J06.9) is planned as its category; a chapter or block is not planned at all."""
    if detail.label in ("Chapter", "Block"):
        return GenerationTarget(None, None, _("Notes are planned per ICD-10 category: open one of its categories."))
    category = detail.key.split(".")[0]
    plannable = store.run(
        "MATCH (c:Category {key: $k}) WHERE coalesce(c.n_notes, 0) > 0 OR (c)-[:HAS_SYMPTOM]->(:Symptom) "
        "OR (c)<-[:CHILD_OF*1..3]-(:Code)-[:HAS_SYMPTOM]->(:Symptom) RETURN count(c) AS n", {"k": category})
    if not plannable or not plannable[0]["n"]:
        return GenerationTarget(category, None, _("Nothing to generate from: the category %(category)s has no "
                                                  "symptoms and no example notes in the graph.") % {
                                                      "category": category})
    return GenerationTarget(category, generation_url_for(category), "")


def generation_url_for(key: str) -> str | None:
    """The generation issue wires `generation:new`; until then the action stays hidden."""
    from django.urls import NoReverseMatch, reverse

    try:
        return f"{reverse('generation:new')}?code={key}"
    except NoReverseMatch:
        return None


def import_jobs_recent(limit: int = 20) -> QuerySet[ImportJob]:
    return ImportJob.objects.select_related("version").order_by("-id")[:limit]
