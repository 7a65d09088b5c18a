"""The one graph-store interface. All Cypher in the product goes through a GraphStore."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class GraphUnavailable(Exception):
    """The graph database cannot be reached or refused the request."""


class GraphStore(ABC):
    kind: str

    @abstractmethod
    def run(self, cypher: str, params: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run one Cypher statement and return its rows as dicts keyed by the RETURN names."""

    @abstractmethod
    def ping(self) -> None:
        """Raise GraphUnavailable unless the server answers."""

    @abstractmethod
    def close(self) -> None:
        """Release connections."""
