"""FalkorDB through its own client (Redis protocol): the embedded default."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import redis
from falkordb import FalkorDB
from falkordb.edge import Edge
from falkordb.node import Node

from medsyn_site.env import GraphConfig

from .base import GraphStore, GraphUnavailable

_UNREACHABLE = (redis.ConnectionError, redis.TimeoutError, OSError)


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
    batch_size = 5000  # the Redis protocol has no practical payload limit; fewer round trips

    def __init__(self, config: GraphConfig, *, timeout: float = 10.0, graph_name: str | None = None,
                 db: FalkorDB | None = None) -> None:
        self.config = config
        self.timeout = timeout
        self.graph_name = graph_name or config.database
        self._client = db
        self._graph_handle = None

    @property
    def _db(self) -> FalkorDB:
        # Connect on first use: the client connects in its constructor, and a store must be creatable
        # while the server is down (the status page reports it instead).
        if self._client is None:
            try:
                self._client = FalkorDB(
                    host=self.config.host,
                    port=self.config.port,
                    username=self.config.username or None,
                    password=self.config.password or None,
                    socket_timeout=self.timeout,
                    socket_connect_timeout=min(self.timeout, 3.0),
                )
            except _UNREACHABLE as error:
                raise self._unreachable(error) from error
        return self._client

    @property
    def _graph(self):
        if self._graph_handle is None:
            self._graph_handle = self._db.select_graph(self.graph_name)
        return self._graph_handle

    def _unreachable(self, error: Exception) -> GraphUnavailable:
        return GraphUnavailable(f"FalkorDB at {self.config.display} is unreachable: {error}")

    def run(self, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        try:
            result = self._graph.query(cypher, params or {})
        except _UNREACHABLE as error:
            raise self._unreachable(error) from error
        names = [column[1] if isinstance(column, list | tuple) else column for column in (result.header or [])]
        return [dict(zip(names, (_plain(v) for v in row), strict=True)) for row in result.result_set or []]

    def ping(self) -> None:
        try:
            self._db.connection.ping()
        except _UNREACHABLE as error:
            raise self._unreachable(error) from error

    def close(self) -> None:
        if self._client is not None:
            self._client.connection.close()

    def exists(self) -> bool:
        return bool(self._db.connection.exists(self.graph_name))

    def index_list(self) -> set[tuple[str, str]]:
        if not self.exists():
            return set()
        rows = self.run("CALL db.indexes() YIELD label, properties, entitytype RETURN label, properties, entitytype")
        return {(row["label"], prop) for row in rows if row["entitytype"] == "NODE" for prop in row["properties"]}

    def index_ensure(self, label: str, prop: str) -> None:
        if (label, prop) in self.index_list():
            return
        try:
            self.run(f"CREATE INDEX FOR (n:{label}) ON (n.{prop})")
        except redis.ResponseError as error:  # a concurrent creator won the race
            if "already indexed" not in str(error):
                raise

    def rebuild(self, build: Callable[[GraphStore], None], *, from_current: bool) -> None:
        # FalkorDB has no rollback: build into a private key, then RENAME it over the live graph,
        # which Redis does atomically. A crash leaves only an orphan staging key behind.
        staging_name = f"{self.graph_name}__staging_{uuid.uuid4().hex[:12]}"
        staging = FalkorDBStore(self.config, graph_name=staging_name, db=self._db)
        connection = self._db.connection
        try:
            if from_current and self.exists():
                connection.execute_command("GRAPH.COPY", self.graph_name, staging_name)
            build(staging)
            if not staging.exists():  # an empty build still publishes an (empty) graph
                staging.run("RETURN 1")
            connection.rename(staging_name, self.graph_name)
        except _UNREACHABLE as error:
            staging.drop()
            raise self._unreachable(error) from error
        except BaseException:
            staging.drop()
            raise

    def drop(self) -> None:
        try:
            self._db.connection.delete(self.graph_name)
        except (*_UNREACHABLE, GraphUnavailable):
            pass

    def leftovers_discard(self) -> None:
        for name in self.staging_leftovers():
            self._db.connection.delete(name)

    def staging_leftovers(self) -> list[str]:
        return [name.decode() if isinstance(name, bytes) else name
                for name in self._db.connection.keys(f"{self.graph_name}__staging_*")]
