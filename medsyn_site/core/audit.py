"""The one way to write the audit trail: every do_* action calls audit_write inside its own transaction.

The words of the trail live here too: an action's label is its AuditEvent choice, a state's (from_state, to_state)
the choice of the audited model's state or status field (audit_state_label); audit_history gives a page the records
of one object in those words.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from django.apps import apps
from django.contrib.auth.models import AbstractBaseUser
from django.db import models
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy

from .models import AuditEvent, AuditRecord

# States an audit record names that no model's state or status field lists: a release is created once and has none.
_STATES_WITHOUT_A_FIELD = {"created": gettext_lazy("Created")}


def audit_record(*, actor: AbstractBaseUser | None, action: AuditEvent, obj: models.Model, from_state: str = "",
                 to_state: str = "", reason: str = "", extra: dict | None = None) -> AuditRecord:
    """An unsaved audit record of an action on obj (audit_write saves one; audit_write_many saves many)."""
    if action not in AuditEvent.values:
        raise ValueError(f"unknown audit event {action!r}: add it to AuditEvent")
    if actor is not None and not actor.is_authenticated:
        actor = None
    return AuditRecord(actor=actor, action=action, object_type=type(obj).__name__, object_id=str(obj.pk),
                       from_state=from_state, to_state=to_state, reason=reason, extra=extra or {})


def audit_write(**fields) -> AuditRecord:
    record = audit_record(**fields)
    record.save()
    return record


def audit_write_many(records: Iterable[AuditRecord]) -> None:
    """Many audit records in one INSERT per thousand (a bulk action over thousands of notes)."""
    AuditRecord.objects.bulk_create(records, batch_size=1000)


def audit_trail(obj: models.Model):
    """The audit records of one object, newest first."""
    return AuditRecord.objects.filter(object_type=type(obj).__name__, object_id=str(obj.pk)).select_related("actor")


@cache
def _state_labels() -> dict[str, Promise]:
    """Every state an audit record can name, with its (lazy) label: the choices of every model's state or status
    field, where a value means the same in every model ("done" is Done for a job and for an assignment)."""
    labels: dict[str, Promise] = dict(_STATES_WITHOUT_A_FIELD)
    for model in apps.get_models():
        for field in model._meta.fields:
            if field.name in ("state", "status") and field.choices:
                labels.update((value, label) for value, label in field.flatchoices)
    return labels


def audit_state_label(state: str) -> str:
    """A state as an audit record keeps it ("pending_review") in the reader's words ("Pending review"); a state no
    model lists is shown as kept."""
    return str(_state_labels().get(state, state))


def audit_change(from_state: str, to_state: str) -> str:
    """A change of state in words: "Pending review → Rejected"; one state alone when the other is empty or the same
    (an edit leaves a note pending review); "" for none."""
    states = [state for state in (from_state, to_state) if state]
    return " → ".join(audit_state_label(state) for state in dict.fromkeys(states))


def audit_action_label(action: str) -> str:
    """An action as an audit record keeps it ("reject_note") in the reader's words: its AuditEvent label."""
    return str(AuditEvent(action).label) if action in AuditEvent.values else action


@dataclass(frozen=True)
class AuditEntry:
    """One audit record as a page shows it, in words: the action, the change of state ("Pending review → Rejected";
    "" when the action changed none), the note version it concerned (extra["version"]) and the reason."""

    record: AuditRecord
    action: str
    change: str
    actor: str
    at: datetime
    version: int | None
    reason: str


def audit_entry(record: AuditRecord) -> AuditEntry:
    version = (record.extra or {}).get("version")
    return AuditEntry(record=record, action=audit_action_label(record.action),
                      change=audit_change(record.from_state, record.to_state),
                      actor=record.actor.get_username() if record.actor is not None else "", at=record.created_at,
                      version=version if isinstance(version, int) else None, reason=record.reason)


def audit_history(obj: models.Model, *, limit: int = 50) -> list[AuditEntry]:
    """The latest audit records of one object, newest first, in words."""
    return [audit_entry(record) for record in audit_trail(obj)[:limit]]
