"""The one way to write the audit trail: every do_* action calls audit_write inside its own transaction."""

from __future__ import annotations

from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser
from django.db import models

from .models import AuditEvent, AuditRecord


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
