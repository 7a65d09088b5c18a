"""The same contract for every graph-store adapter that can be reached here.

- falkordb: FalkorDB through its own client (always).
- neo4j-driver-on-falkordb-bolt: the neo4j adapter against FalkorDB's experimental Bolt endpoint, for the
  read/write paths it handles (protocol compatibility only; skipped when this FalkorDB build does not open
  its Bolt port).
- neo4j: a real Neo4j 5 when NEO4J_TEST_URL is set (e.g. bolt://neo4j:secret@127.0.0.1:7687/neo4j).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import uuid
from pathlib import Path

import pytest
from django.conf import settings

from graph.store import GraphUnavailable, store_for
from medsyn_site.env import graph_from_url
from medsyn_site.stack import falkordb_start, free_low_port, free_port, port_open, process_group_stop, wait_for


@pytest.fixture(scope="session")
def falkordb_bolt_url():
    port, bolt = free_port(), free_low_port()  # FalkorDB ignores a BOLT_PORT above 32767
    root = Path(tempfile.mkdtemp(prefix="medsyn-bolt-"))
    proc = falkordb_start(port, root, persist=False, log=root / "falkordb.log", bolt_port=bolt)
    try:
        try:
            wait_for(lambda: port_open(bolt), 3, "the Bolt port")
        except RuntimeError:
            pytest.skip("this FalkorDB build does not open its Bolt port (BOLT_PORT stays unset)")
        yield f"bolt://127.0.0.1:{bolt}/db"
    finally:
        process_group_stop(proc.pid, timeout=5)


def _falkordb():
    return store_for(dataclasses.replace(settings.GRAPH, database=f"contract_{uuid.uuid4().hex[:8]}"))


ADAPTERS = [
    pytest.param("falkordb", id="falkordb"),
    pytest.param("bolt-compat", id="neo4j-driver-on-falkordb-bolt", marks=pytest.mark.protocol_compat),
    pytest.param("neo4j", id="neo4j", marks=pytest.mark.skipif(not os.environ.get("NEO4J_TEST_URL"),
                                                                reason="NEO4J_TEST_URL not set")),
]


@pytest.fixture(scope="session")
def bolt_store(falkordb_bolt_url):
    # One driver for the whole session: FalkorDB's Bolt endpoint stalls new connection opens (STACK.md).
    store = store_for(graph_from_url("GRAPH_URL", falkordb_bolt_url))
    yield store
    store.close()


@pytest.fixture(params=ADAPTERS)
def adapter(request):
    if request.param == "falkordb":
        store = _falkordb()
    elif request.param == "bolt-compat":
        store = request.getfixturevalue("bolt_store")
    else:
        store = store_for(graph_from_url("NEO4J_TEST_URL", os.environ["NEO4J_TEST_URL"]))
    store.drop()
    yield request.param, store
    store.drop()
    if request.param != "bolt-compat":
        store.close()


def test_ping_and_rows_as_dicts(adapter):
    _, store = adapter
    store.ping()
    store.run("CREATE (:Symptom {key: 'кашель', name: 'кашель', n: 3})")
    rows = store.run("MATCH (s:Symptom {key: $k}) RETURN s.name AS name, s.n AS n, s AS node", {"k": "кашель"})
    assert rows == [{"name": "кашель", "n": 3, "node": {"key": "кашель", "name": "кашель", "n": 3}}]


def test_batched_unwind_merge_is_idempotent(adapter):
    kind, store = adapter
    rows = [{"key": f"K{i:03d}", "props": {"name": f"n{i}"}} for i in range(1200)]
    # FalkorDB's Bolt endpoint drops the connection (and may crash) on parameters over ~4 KB (STACK.md).
    batch_size = 40 if kind == "bolt-compat" else 300
    for _ in range(2):
        store.run_batches("UNWIND $rows AS r MERGE (n:Code {key: r.key}) SET n += r.props", rows,
                          batch_size=batch_size)
    assert store.run("MATCH (n:Code) RETURN count(n) AS c") == [{"c": 1200}]


def test_portable_read_paths(adapter):
    _, store = adapter
    store.run("CREATE (c:Category {key: 'J06'})-[:HAS_SYMPTOM {count: 5, source: 's'}]->(:Symptom {key: 'a'}), "
              "(c)-[:HAS_SYMPTOM {count: 2, source: 's'}]->(:Symptom {key: 'b'})")
    rows = store.run("MATCH (c:Category)-[e:HAS_SYMPTOM]->(s) WHERE c.key STARTS WITH $p "
                     "RETURN s.key AS key, e.count AS count ORDER BY count DESC SKIP $s LIMIT $l",
                     {"p": "J0", "s": 0, "l": 10})
    assert rows == [{"key": "a", "count": 5}, {"key": "b", "count": 2}]
    assert store.run("MATCH (n) RETURN labels(n)[0] AS label, count(n) AS c ORDER BY label") == [
        {"label": "Category", "c": 1}, {"label": "Symptom", "c": 2}]


def test_index_ensure_is_idempotent_and_listed(adapter):
    kind, store = adapter
    if kind == "bolt-compat":
        pytest.skip("index listing goes through procedures the Bolt endpoint does not promise")
    store.index_ensure("Symptom", "key")
    store.index_ensure("Symptom", "key")
    assert ("Symptom", "key") in store.index_list()


def test_rebuild_publishes_on_success_and_keeps_the_old_graph_on_failure(adapter):
    kind, store = adapter
    if kind == "bolt-compat":
        pytest.skip("FalkorDB's Bolt endpoint has no rollback")
    store.run("CREATE (:Drug {key: 'old'})")

    def good(target):
        target.run("CREATE (:Drug {key: 'new'})")

    store.rebuild(good, from_current=True)
    assert {r["k"] for r in store.run("MATCH (d:Drug) RETURN d.key AS k")} == {"old", "new"}

    def bad(target):
        target.run("MATCH (d:Drug) DETACH DELETE d")
        target.run("CREATE (:Drug {key: 'half'})")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        store.rebuild(bad, from_current=True)
    assert {r["k"] for r in store.run("MATCH (d:Drug) RETURN d.key AS k")} == {"old", "new"}
    if kind == "falkordb":
        assert store.staging_leftovers() == []

    store.rebuild(lambda target: target.run("CREATE (:Drug {key: 'only'})"), from_current=False)
    assert [r["k"] for r in store.run("MATCH (d:Drug) RETURN d.key AS k")] == ["only"]


def test_unreachable_server_raises_graph_unavailable():
    config = dataclasses.replace(settings.GRAPH, port=free_port())
    store = store_for(config, timeout=1)
    with pytest.raises(GraphUnavailable):
        store.ping()
    with pytest.raises(GraphUnavailable):
        store.run("RETURN 1")
