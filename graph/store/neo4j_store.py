"""Neo4j 5 through the official neo4j driver (bolt:// or neo4j://)."""

from __future__ import annotations

from typing import Any

import neo4j
from neo4j import GraphDatabase
from neo4j.exceptions import ServiceUnavailable, SessionExpired

from medsyn_site.env import GraphConfig

from .base import GraphStore, GraphUnavailable


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

    def run(self, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        try:
            records, _summary, keys = self._driver.execute_query(
                cypher, params or {}, database_=self.database
            )
        except (ServiceUnavailable, SessionExpired, OSError) as error:
            raise GraphUnavailable(f"Neo4j at {self.config.display} is unreachable: {error}") from error
        return [{key: _plain(record[key]) for key in keys} for record in records]

    def ping(self) -> None:
        try:
            self._driver.verify_connectivity()
        except (ServiceUnavailable, SessionExpired, OSError) as error:
            raise GraphUnavailable(f"Neo4j at {self.config.display} is unreachable: {error}") from error

    def close(self) -> None:
        self._driver.close()
