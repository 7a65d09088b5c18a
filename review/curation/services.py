"""Curation of synthetic notes: every change of a note's review state, text or release flags is one do_* action
that checks the change is allowed and writes its audit record in the same transaction (STYLE.md). Every writer of a
note's curation (these actions and the scans) locks the note's row first, then reads or creates its NoteCuration.

    generated --submit--> pending_review --approve--> approved
                                         --reject---> rejected     (reason required)
                                         --request_edit--> needs_edit (reason required)
    needs_edit / pending_review --edit (new version)--> pending_review
    approved / rejected --reopen (reason required)--> pending_review

Releases already made keep the text they froze; a reopened or edited note only changes future releases.
"""

from __future__ import annotations

import difflib
import html
import re
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import QuerySet
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from generation.models import Note
from generation.services import note_text_revise
from medsyn_site.core.audit import audit_record, audit_write, audit_write_many
from medsyn_site.core.errors import StateConflict
from medsyn_site.core.models import AuditEvent

from .models import NoteCuration, ReviewState
from .selectors import note_curation, notes_in_states

S = ReviewState


@dataclass(frozen=True)
class Transition:
    action: str
    label: str
    sources: frozenset[str]
    target: str
    reason_required: bool
    event: AuditEvent


TRANSITIONS: dict[str, Transition] = {t.action: t for t in (
    Transition("submit", gettext_lazy("Submit for review"), frozenset({S.GENERATED}), S.PENDING_REVIEW, False,
               AuditEvent.SUBMIT_NOTE),
    Transition("approve", gettext_lazy("Approve"), frozenset({S.PENDING_REVIEW}), S.APPROVED, False,
               AuditEvent.APPROVE_NOTE),
    Transition("reject", gettext_lazy("Reject"), frozenset({S.PENDING_REVIEW}), S.REJECTED, True,
               AuditEvent.REJECT_NOTE),
    Transition("request_edit", gettext_lazy("Needs edit"), frozenset({S.PENDING_REVIEW}), S.NEEDS_EDIT, True,
               AuditEvent.REQUEST_EDIT_NOTE),
    Transition("reopen", gettext_lazy("Reopen"), frozenset({S.APPROVED, S.REJECTED}), S.PENDING_REVIEW, True,
               AuditEvent.REOPEN_NOTE),
)}
EDITABLE_STATES = frozenset({S.PENDING_REVIEW, S.NEEDS_EDIT})
BULK_ACTIONS = ("submit", "approve", "reject", "reopen")


class TransitionError(StateConflict):
    """The note is not in a state that allows the action (or the action is not one of TRANSITIONS)."""


def _state_label(state: str) -> str:
    return str(ReviewState(state).label)


def transition_check(note: Note, action: str, reason: str = "") -> Transition:
    """The transition, or TransitionError saying in words why it is not allowed."""
    transition = TRANSITIONS.get(action)
    if transition is None:
        raise TransitionError(_("Unknown curation action %(action)r; expected one of %(actions)s.")
                              % {"action": action, "actions": ", ".join(TRANSITIONS)})
    if note.origin != Note.Origin.SYNTHETIC:
        raise TransitionError(_("Note %(id)s is a real note; only synthetic notes are curated.") % {"id": note.pk})
    state = note_curation(note).state
    if state not in transition.sources:
        allowed = _(" or ").join(_state_label(s).lower() for s in sorted(transition.sources))
        message = _("“%(action)s” does not apply to note %(id)s: it is %(state)s, and only a note that is "
                    "%(allowed)s can take it.") % {"action": transition.label, "id": note.pk,
                                                   "state": _state_label(state).lower(), "allowed": allowed}
        if state == S.GENERATED:
            message += " " + _("A generated note is submitted for review first (key S).")
        raise TransitionError(message)
    if transition.reason_required and not reason.strip():
        raise TransitionError(_("%(action)s: a reason is required.") % {"action": transition.label})
    return transition


def _locked(note: Note) -> tuple[Note, NoteCuration]:
    """The note, locked, with its curation row (created on the first action)."""
    note = Note.objects.select_for_update().get(pk=note.pk)
    curation, _created = NoteCuration.objects.get_or_create(note=note)
    note.curation = curation
    return note, curation


@transaction.atomic
def do_transition_note(*, actor: AbstractBaseUser, note: Note, action: str, reason: str = "") -> Note:
    """Move one note along the lifecycle (TRANSITIONS), with its audit record."""
    note, curation = _locked(note)
    transition = transition_check(note, action, reason)
    from_state = curation.state
    curation.state = transition.target
    curation.reason = reason.strip()
    curation.save(update_fields=["state", "reason"])
    audit_write(actor=actor, action=transition.event, obj=note, from_state=from_state, to_state=curation.state,
                reason=curation.reason, extra={"version": note.version})
    return note


def _checks_void(curation: NoteCuration) -> None:
    """Forget both scans' results and any override: they were about another text."""
    curation.near_duplicate_of = None
    curation.duplicate_jaccard = None
    curation.duplicates_checked_version = None
    curation.memorisation_real_note = None
    curation.memorisation_ngram = curation.memorisation_score = None
    curation.memorised = False
    curation.memorisation_checked_version = None
    curation.flag_override = False


@transaction.atomic
def do_edit_note(*, actor: AbstractBaseUser, note: Note, text: str, reason: str = "") -> Note:
    """Replace the text with a new version (generation.services.note_text_revise keeps the old one and runs the
    automatic checks again) and send it back to review.

    Both scans' flags and checks are voided until the next scans, and an override with them: an edit can never
    carry a real note or a near duplicate into a release unchecked.
    """
    note, curation = _locked(note)
    if note.origin != Note.Origin.SYNTHETIC:
        raise TransitionError(_("Note %(id)s is a real note; only synthetic notes are edited.") % {"id": note.pk})
    if curation.state not in EDITABLE_STATES:
        raise TransitionError(_("Cannot edit note %(id)s: it is %(state)s; only a note pending review or needing an "
                                "edit can be edited (reopen it first).")
                              % {"id": note.pk, "state": _state_label(curation.state).lower()})
    note = note_text_revise(note=note, text=text, actor=actor, reason=reason)
    from_state = curation.state
    curation.state = S.PENDING_REVIEW
    curation.reason = ""
    _checks_void(curation)
    curation.save()
    audit_write(actor=actor, action=AuditEvent.EDIT_NOTE, obj=note, from_state=from_state, to_state=curation.state,
                reason=reason.strip(), extra={"version": note.version, "previous_version": note.version - 1})
    return note


@transaction.atomic
def do_override_note_flag(*, actor: AbstractBaseUser, note: Note, reason: str) -> Note:
    """Let a flagged note (near duplicate or memorised) into releases: a deliberate, explained decision."""
    note, curation = _locked(note)
    if not curation.flagged:
        raise TransitionError(_("Note %(id)s is not flagged; there is nothing to override.") % {"id": note.pk})
    if curation.flag_override:
        raise TransitionError(_("Note %(id)s is already released from its flag.") % {"id": note.pk})
    if not reason.strip():
        raise TransitionError(_("Overriding a flag needs a reason."))
    curation.flag_override = True
    curation.save(update_fields=["flag_override"])
    audit_write(actor=actor, action=AuditEvent.OVERRIDE_NOTE_FLAG, obj=note, reason=reason.strip(), extra={
        "near_duplicate_of": curation.near_duplicate_of_id, "memorised": curation.memorised,
        "memorisation_real_note": curation.memorisation_real_note_id,
        "memorisation_ngram": curation.memorisation_ngram, "version": note.version})
    return note


@dataclass(frozen=True)
class BulkPreview:
    matching: int      # notes the filter matches
    eligible: int      # of those, notes the action can move
    action: str

    @property
    def skipped(self) -> int:
        return self.matching - self.eligible


def bulk_preview(*, notes: QuerySet[Note], action: str) -> BulkPreview:
    transition = TRANSITIONS.get(action)
    if transition is None or action not in BULK_ACTIONS:
        raise TransitionError(_("Bulk action must be one of %(actions)s.") % {"actions": ", ".join(BULK_ACTIONS)})
    eligible = notes_in_states(notes.filter(origin=Note.Origin.SYNTHETIC), transition.sources)
    return BulkPreview(matching=notes.count(), eligible=eligible.count(), action=action)


@transaction.atomic
def do_bulk_transition_notes(*, actor: AbstractBaseUser, notes: QuerySet[Note], action: str, reason: str = "",
                             expected: int) -> int:
    """Apply one action to every eligible note of a filter, only if the preview the user saw still holds.

    expected is the eligible count of that preview: when the filter now matches a different set (someone
    else acted meanwhile), nothing is done and the user is asked to look again.
    """
    preview = bulk_preview(notes=notes, action=action)
    transition = TRANSITIONS[action]
    if transition.reason_required and not reason.strip():
        raise TransitionError(_("%(action)s: a reason is required.") % {"action": transition.label})
    ids = list(notes_in_states(notes.filter(origin=Note.Origin.SYNTHETIC), transition.sources)
               .values_list("id", flat=True))  # the queue's queryset aggregates; rows are locked by id
    locked = list(Note.objects.filter(pk__in=ids).select_for_update().only("id", "version").order_by("id"))
    states = dict(NoteCuration.objects.filter(note__in=locked).values_list("note_id", "state"))  # read once locked
    eligible = [note for note in locked if states.get(note.pk, S.GENERATED) in transition.sources]
    if len(eligible) != expected or preview.eligible != expected:
        raise TransitionError(_("The filter now selects %(now)d notes for this action, not the %(expected)d of the "
                              "preview; preview again.") % {"now": len(eligible), "expected": expected})
    reason = reason.strip()
    NoteCuration.objects.bulk_create(
        [NoteCuration(note=note, state=transition.target, reason=reason) for note in eligible],
        update_conflicts=True, unique_fields=["note"], update_fields=["state", "reason"], batch_size=1000)
    audit_write_many(audit_record(actor=actor, action=transition.event, obj=note,
                                  from_state=states.get(note.pk, S.GENERATED), to_state=transition.target,
                                  reason=reason, extra={"version": note.version, "bulk": True}) for note in eligible)
    return len(eligible)


TOKEN = re.compile(r"\s+|[^\s]+")


def text_diff_html(old: str, new: str) -> SafeString:
    """Word-level diff of two texts as HTML: <del> for removed, <ins> for added words (escaped)."""
    a, b = TOKEN.findall(old), TOKEN.findall(new)
    parts = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            parts.append(html.escape("".join(a[i1:i2])))
            continue
        if op in ("delete", "replace"):
            parts.append(f"<del>{html.escape(''.join(a[i1:i2]))}</del>")
        if op in ("insert", "replace"):
            parts.append(f"<ins>{html.escape(''.join(b[j1:j2]))}</ins>")
    return mark_safe("".join(parts))  # noqa: S308 - every piece is escaped above
