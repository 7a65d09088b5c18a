"""FalkorDB through its own client (Redis protocol): the embedded default."""

from __future__ import annotations

from typing import Any

import redis
from falkordb import FalkorDB
from falkordb.edge import Edge
from falkordb.node import Node

from medsyn_site.env import GraphConfig

from .base import GraphStore, GraphUnavailable


def _plain(value: Any) -> Any:
    if isinstance(value, Node | Edge):
        return dict(value.properties)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class FalkorDBStore(GraphStore):
    kind = "falkordb"

    def __init__(self, config: GraphConfig, *, timeout: float = 10.0) -> None:
        self.config = config
        self._db = FalkorDB(
            host=config.host,
            port=config.port,
            username=config.username or None,
            password=config.password or None,
            socket_timeout=timeout,
            socket_connect_timeout=min(timeout, 3.0),
        )
        self.graph_name = config.database
        self._graph = self._db.select_graph(self.graph_name)

    def run(self, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        try:
            result = self._graph.query(cypher, params or {})
        except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
            raise GraphUnavailable(f"FalkorDB at {self.config.display} is unreachable: {error}") from error
        names = [column[1] if isinstance(column, list | tuple) else column for column in (result.header or [])]
        return [dict(zip(names, (_plain(v) for v in row), strict=True)) for row in result.result_set or []]

    def ping(self) -> None:
        try:
            self._db.connection.ping()
        except (redis.ConnectionError, redis.TimeoutError, OSError) as error:
            raise GraphUnavailable(f"FalkorDB at {self.config.display} is unreachable: {error}") from error

    def close(self) -> None:
        self._db.connection.close()
