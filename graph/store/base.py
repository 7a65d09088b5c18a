"""The one graph-store interface. All Cypher in the product goes through a GraphStore.

Queries are written in the portable Cypher subset (docs STACK.md); what differs between FalkorDB and
Neo4j (index creation and listing, publishing a rebuilt graph atomically, deleting a graph) lives in
the adapters behind the methods below.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

# Bolt connections die on large parameter payloads; chunks of this many rows stay small.
DEFAULT_BATCH_SIZE = 500


class GraphUnavailable(Exception):
    """The graph database cannot be reached or refused the request."""


class GraphStore(ABC):
    kind: str
    # rows per UNWIND statement; adapters whose protocol copes with bigger payloads raise it
    batch_size: int = DEFAULT_BATCH_SIZE

    @abstractmethod
    def run(self, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run one Cypher statement and return its rows as dicts keyed by the RETURN names."""

    @abstractmethod
    def ping(self) -> None:
        """Raise GraphUnavailable unless the server answers."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""

    @abstractmethod
    def index_ensure(self, label: str, prop: str) -> None:
        """Create a property index on (label, prop) unless it exists (idempotent)."""

    @abstractmethod
    def index_list(self) -> set[tuple[str, str]]:
        """The (label, property) pairs that have a node property index."""

    @abstractmethod
    def rebuild(self, build: Callable[[GraphStore], None], *, from_current: bool) -> None:
        """Run build() against a private copy of the graph and publish it only if build returns.

        from_current=True starts the copy from the current graph, False from an empty graph. If build
        raises (or the process dies), readers keep seeing the previous graph unchanged.
        """

    @abstractmethod
    def drop(self) -> None:
        """Delete the whole graph (tests and --replace)."""

    @abstractmethod
    def leftovers_discard(self) -> None:
        """Remove what a rebuild killed mid-way left behind (call only while no rebuild runs)."""

    def run_batches(
        self,
        cypher: str,
        rows: Sequence[dict[str, Any]],
        *,
        batch_size: int | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        """Run an `UNWIND $rows AS r ...` statement over rows in chunks."""
        batch_size = batch_size or self.batch_size
        for start in range(0, len(rows), batch_size):
            chunk = list(rows[start:start + batch_size])
            self.run(cypher, {"rows": chunk})
            if on_batch is not None:
                on_batch(len(chunk))

