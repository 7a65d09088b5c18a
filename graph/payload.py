"""What an import writes: nodes and edges grouped by label and type, and the one writer for them.

Every importer (ICD-10, RuMedBench, the generic JSONL format, Russian names) parses its input into a
GraphPayload first, so bad input is reported, with line numbers (medsyn_site.core.errors.InputError), before
anything is written: a file importer notes each bad line in payload.problems, and graph_import refuses the payload
with those and any edge whose endpoints are missing, all in one report.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from dataclasses import astuple, dataclass, field
from typing import Any

from medsyn_site.core.progress import Progress

from .schema import NODE_LABELS, REL_TYPES
from .store import GraphStore

_SEARCH_TEXT = "replace(toLower(n.key + ' ' + coalesce(n.name, '') + ' ' + coalesce(n.name_ru, '')), 'ё', 'е')"


@dataclass(frozen=True)
class EdgeKey:
    type: str
    from_label: str
    from_key: str
    to_label: str
    to_key: str
    source: str


@dataclass
class GraphPayload:
    nodes: dict[str, dict[str, dict[str, Any]]] = field(default_factory=lambda: defaultdict(dict))
    edges: dict[EdgeKey, dict[str, Any]] = field(default_factory=dict)
    edge_lines: dict[EdgeKey, int] = field(default_factory=dict)
    problems: list[tuple[int, str]] = field(default_factory=list)  # (line, message) of each bad input line

    def node_add(self, label: str, key: str, props: dict[str, Any]) -> None:
        self.nodes[label].setdefault(key, {}).update(props)

    def edge_add(self, edge: EdgeKey, props: dict[str, Any] | None = None, *, line: int = 0) -> None:
        self.edges.setdefault(edge, {}).update(props or {})
        if line:
            self.edge_lines[edge] = line

    def merge(self, other: GraphPayload) -> None:
        """Add other's nodes (their properties merged into any node already here) and edges."""
        for label, nodes in other.nodes.items():
            for key, props in nodes.items():
                self.node_add(label, key, props)
        self.edges.update(other.edges)
        self.problems.extend(other.problems)

    def digest(self) -> str:
        """sha256 of what would be written (nodes and edges with their properties, in a stable order), whatever
        file, file name, line order, byte-order mark or line ends they came from."""
        digest = hashlib.sha256()
        for label in sorted(self.nodes):
            for key, props in sorted(self.nodes[label].items()):
                digest.update(_canonical(["node", label, key, props]))
        for edge, props in sorted(self.edges.items(), key=lambda item: astuple(item[0])):
            digest.update(_canonical(["edge", *astuple(edge), props]))
        return digest.hexdigest()

    @property
    def size(self) -> int:
        return sum(len(v) for v in self.nodes.values()) + len(self.edges)

    def endpoints_missing(self, store: GraphStore | None) -> list[tuple[int, str]]:
        """Edges whose endpoints are neither in this payload nor (when store is given) in the graph."""
        wanted: dict[str, set[str]] = defaultdict(set)
        for edge in self.edges:
            for label, key in ((edge.from_label, edge.from_key), (edge.to_label, edge.to_key)):
                if key not in self.nodes.get(label, {}):
                    wanted[label].add(key)
        found: dict[str, set[str]] = defaultdict(set)
        if store is not None:
            for label, keys in wanted.items():
                rows = store.run(f"UNWIND $keys AS k MATCH (n:{label} {{key: k}}) RETURN n.key AS key",
                                 {"keys": sorted(keys)})
                found[label] = {row["key"] for row in rows}
        problems = []
        for edge in self.edges:
            for label, key in ((edge.from_label, edge.from_key), (edge.to_label, edge.to_key)):
                if key in wanted.get(label, ()) and key not in found[label]:
                    problems.append((self.edge_lines.get(edge, 0), f"{edge.type} refers to unknown {label} {key!r}"))
        return sorted(problems)


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def payload_write(store: GraphStore, payload: GraphPayload, progress: Progress | None = None) -> None:
    """Write every node, then every edge, in batches; progress in nodes and edges written (of payload.size)."""
    total = payload.size
    done = 0
    # Into an empty graph CREATE is equivalent to MERGE (payload keys are unique) and twice as fast.
    empty = store.run("MATCH (n) RETURN count(n) AS c")[0]["c"] == 0
    verb = "CREATE" if empty else "MERGE"

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    if progress is not None:
        progress(0, total)

    for label in NODE_LABELS:
        rows = [{"key": key, "props": props} for key, props in sorted(payload.nodes.get(label, {}).items())]
        if rows:
            store.run_batches(
                f"UNWIND $rows AS r {verb} (n:{label} {{key: r.key}}) SET n += r.props "
                f"SET n.search_text = {_SEARCH_TEXT}",
                rows, on_batch=advance)
    grouped: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for edge, props in payload.edges.items():
        grouped[(edge.type, edge.from_label, edge.to_label)].append(
            {"a": edge.from_key, "b": edge.to_key, "source": edge.source, "props": props})
    for (rel, from_label, to_label), rows in sorted(grouped.items()):
        store.run_batches(
            f"UNWIND $rows AS r MATCH (a:{from_label} {{key: r.a}}) MATCH (b:{to_label} {{key: r.b}}) "
            f"{verb} (a)-[e:{rel} {{source: r.source}}]->(b) SET e += r.props",
            rows, on_batch=advance)


def graph_counts(store: GraphStore) -> dict[str, dict[str, int]]:
    nodes = {label: store.run(f"MATCH (n:{label}) RETURN count(n) AS c")[0]["c"] for label in NODE_LABELS}
    edges = {rel: store.run(f"MATCH ()-[e:{rel}]->() RETURN count(e) AS c")[0]["c"] for rel in REL_TYPES}
    return {"nodes": nodes, "edges": edges}


def graph_rows_export(store: GraphStore) -> list[dict[str, Any]]:
    """The whole graph (without version records) as rows of the generic format, in a stable order."""
    rows: list[dict[str, Any]] = []
    for label in NODE_LABELS:
        for row in store.run(f"MATCH (n:{label}) RETURN n AS n ORDER BY n.key"):
            props = {k: v for k, v in sorted(row["n"].items()) if k not in {"key", "search_text"}}
            rows.append({"kind": "node", "label": label, "key": row["n"]["key"], "props": props})
    for rel in REL_TYPES:
        result = store.run(
            f"MATCH (a)-[e:{rel}]->(b) RETURN labels(a)[0] AS al, a.key AS ak, labels(b)[0] AS bl, b.key AS bk, "
            "e AS e ORDER BY ak, bk, e.source")
        for row in result:
            props = {k: v for k, v in sorted(row["e"].items()) if k != "source"}
            rows.append({"kind": "edge", "type": rel, "from": {"label": row["al"], "key": row["ak"]},
                         "to": {"label": row["bl"], "key": row["bk"]}, "source": row["e"].get("source", ""),
                         "props": props})
    return rows

