"""Neo4j 5 through the official neo4j driver (bolt:// or neo4j://)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import neo4j
from neo4j import GraphDatabase
from neo4j.exceptions import ServiceUnavailable, SessionExpired

from medsyn_site.env import GraphConfig

from .base import GraphStore, GraphUnavailable

_UNREACHABLE = (ServiceUnavailable, SessionExpired, OSError)


def _plain(value: Any) -> Any:
    if isinstance(value, neo4j.graph.Node | neo4j.graph.Relationship):
        return dict(value.items())
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class Neo4jStore(GraphStore):
    kind = "neo4j"

    def __init__(self, config: GraphConfig, *, timeout: float = 10.0) -> None:
        self.config = config
        scheme = config.url.split("://", 1)[0]
        auth = (config.username, config.password) if config.username else None
        self._driver = GraphDatabase.driver(
            f"{scheme}://{config.host}:{config.port}",
            auth=auth,
            connection_timeout=timeout,
            max_transaction_retry_time=timeout,
        )
        self.database = config.database

    def _unreachable(self, error: Exception) -> GraphUnavailable:
        return GraphUnavailable(f"Neo4j at {self.config.display} is unreachable: {error}")

    def run(self, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        try:
            records, _summary, keys = self._driver.execute_query(
                cypher, params or {}, database_=self.database
            )
        except _UNREACHABLE as error:
            raise self._unreachable(error) from error
        return [{key: _plain(record[key]) for key in keys} for record in records]

    def ping(self) -> None:
        try:
            self._driver.verify_connectivity()
        except _UNREACHABLE as error:
            raise self._unreachable(error) from error

    def close(self) -> None:
        self._driver.close()

    def index_list(self) -> set[tuple[str, str]]:
        rows = self.run("SHOW INDEXES YIELD entityType, labelsOrTypes, properties "
                        "RETURN entityType, labelsOrTypes, properties")
        return {(label, prop) for row in rows if row["entityType"] == "NODE"
                for label in (row["labelsOrTypes"] or []) for prop in (row["properties"] or [])}

    def index_ensure(self, label: str, prop: str) -> None:
        self.run(f"CREATE INDEX IF NOT EXISTS FOR (n:{label}) ON (n.{prop})")

    def rebuild(self, build: Callable[[GraphStore], None], *, from_current: bool) -> None:
        # Neo4j has real transactions: the whole build is one transaction, committed only at the end.
        try:
            with self._driver.session(database=self.database) as session, session.begin_transaction() as tx:
                if not from_current:
                    tx.run("MATCH (n) DETACH DELETE n").consume()
                build(_Neo4jTransactionStore(self, tx))
                tx.commit()
        except _UNREACHABLE as error:
            raise self._unreachable(error) from error

    def drop(self) -> None:
        self.run("MATCH (n) DETACH DELETE n")

    def leftovers_discard(self) -> None:
        """A rolled-back or dropped transaction leaves nothing behind."""


class _Neo4jTransactionStore(GraphStore):
    """The store a rebuild hands to its build function: statements run inside one open transaction."""

    kind = "neo4j"

    def __init__(self, parent: Neo4jStore, tx: neo4j.Transaction) -> None:
        self._parent = parent
        self._tx = tx

    def run(self, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        result = self._tx.run(cypher, params or {})
        keys = result.keys()
        return [{key: _plain(record[key]) for key in keys} for record in result]

    def ping(self) -> None:
        self._parent.ping()

    def close(self) -> None:
        """The transaction belongs to the parent's rebuild."""

    def index_list(self) -> set[tuple[str, str]]:
        return self._parent.index_list()

    def index_ensure(self, label: str, prop: str) -> None:
        # Schema changes cannot share a transaction with writes in Neo4j; indexes are not data.
        self._parent.index_ensure(label, prop)

    def rebuild(self, build: Callable[[GraphStore], None], *, from_current: bool) -> None:
        raise RuntimeError("rebuild cannot nest inside a rebuild")

    def drop(self) -> None:
        self.run("MATCH (n) DETACH DELETE n")

    def leftovers_discard(self) -> None:
        """A rolled-back or dropped transaction leaves nothing behind."""
