"""Errors a service raises, by what went wrong; the API maps each kind once (core.api).

- Django's ValidationError: the input is wrong (400).
- StateConflict: the input is fine but the object's state does not allow the action now (409): a closed study,
  a note in the wrong review state, a stale bulk preview, a scan already running.
- Django's PermissionDenied: this user may not (403).
- graph.store.GraphUnavailable, django.db.OperationalError, BrokerUnavailable: a component is down (503,
  medsyn_site.middleware).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.exceptions import ValidationError


class StateConflict(ValidationError):
    """The action is not allowed in the object's current state."""


class BrokerUnavailable(Exception):
    """The Celery broker did not take a task: nothing was started (core.jobs)."""


@dataclass
class InputError(Exception):
    """A file with problems; nothing was written. problems: (line number, message) pairs; line 0 = the file."""

    source: str
    problems: list[tuple[int, str]] = field(default_factory=list)

    def __str__(self) -> str:
        shown = "; ".join(f"line {line}: {message}" if line else message for line, message in self.problems[:10])
        more = f" (and {len(self.problems) - 10} more)" if len(self.problems) > 10 else ""
        return f"{self.source}: {len(self.problems)} problem(s), nothing imported: {shown}{more}"

    def report(self) -> list[dict]:
        """The problems as [{line, message}] for a job's error list."""
        return [{"line": line, "message": message} for line, message in self.problems]
