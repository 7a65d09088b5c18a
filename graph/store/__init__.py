"""Pick the graph-store adapter from GRAPH_URL; one store per configuration per process."""

from __future__ import annotations

import threading

from django.conf import settings

from medsyn_site.env import GraphConfig

from .base import GraphStore, GraphUnavailable

_stores: dict[GraphConfig, GraphStore] = {}
_lock = threading.Lock()


def store_for(config: GraphConfig, *, timeout: float | None = None) -> GraphStore:
    timeout = timeout if timeout is not None else settings.GRAPH_TIMEOUT_SECONDS
    if config.kind == "falkordb":
        from .falkordb_store import FalkorDBStore

        return FalkorDBStore(config, timeout=timeout)
    from .neo4j_store import Neo4jStore

    return Neo4jStore(config, timeout=timeout)


def get_graph_store() -> GraphStore:
    """The store for settings.GRAPH, created once and shared (both clients are thread-safe pools)."""
    config = settings.GRAPH
    with _lock:
        store = _stores.get(config)
        if store is None:
            store = _stores[config] = store_for(config)
        return store


__all__ = ["GraphStore", "GraphUnavailable", "get_graph_store", "store_for"]
