"""Curation of synthetic notes: every change of a note's review state, text or release flags is one do_* action
that checks the change is allowed and writes its audit record in the same transaction (STYLE.md).

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
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils.safestring import SafeString, mark_safe

from generation.checks import note_check
from generation.models import Note, NoteVersion, ReviewState
from generation.services import note_content_hash
from medsyn_site.core.audit import audit_record, audit_write, audit_write_many
from medsyn_site.core.errors import StateConflict
from medsyn_site.core.models import AuditEvent

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
    Transition("submit", "Submit for review", frozenset({S.GENERATED}), S.PENDING_REVIEW, False,
               AuditEvent.SUBMIT_NOTE),
    Transition("approve", "Approve", frozenset({S.PENDING_REVIEW}), S.APPROVED, False, AuditEvent.APPROVE_NOTE),
    Transition("reject", "Reject", frozenset({S.PENDING_REVIEW}), S.REJECTED, True, AuditEvent.REJECT_NOTE),
    Transition("request_edit", "Needs edit", frozenset({S.PENDING_REVIEW}), S.NEEDS_EDIT, True,
               AuditEvent.REQUEST_EDIT_NOTE),
    Transition("reopen", "Reopen", frozenset({S.APPROVED, S.REJECTED}), S.PENDING_REVIEW, True,
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
        raise TransitionError(f"Unknown curation action {action!r}; expected one of {', '.join(TRANSITIONS)}.")
    if note.origin != Note.Origin.SYNTHETIC:
        raise TransitionError(f"Note {note.pk} is a real note; only synthetic notes are curated.")
    if note.review_state not in transition.sources:
        allowed = " or ".join(_state_label(s).lower() for s in sorted(transition.sources))
        raise TransitionError(f"Cannot {transition.label.lower()} note {note.pk}: it is "
                              f"{_state_label(note.review_state).lower()}, and only a note that is {allowed} can be.")
    if transition.reason_required and not reason.strip():
        raise TransitionError(f"{transition.label}: a reason is required.")
    return transition


def _locked(note: Note) -> Note:
    return Note.objects.select_for_update().get(pk=note.pk)


@transaction.atomic
def do_transition_note(*, actor: AbstractBaseUser, note: Note, action: str, reason: str = "") -> Note:
    """Move one note along the lifecycle (TRANSITIONS), with its audit record."""
    note = _locked(note)
    transition = transition_check(note, action, reason)
    from_state = note.review_state
    note.review_state = transition.target
    note.review_reason = reason.strip()
    note.save(update_fields=["review_state", "review_reason"])
    audit_write(actor=actor, action=transition.event, obj=note, from_state=from_state, to_state=note.review_state,
                reason=note.review_reason, extra={"version": note.version})
    return note


@transaction.atomic
def do_edit_note(*, actor: AbstractBaseUser, note: Note, text: str, reason: str = "") -> Note:
    """Replace the text with a new version (the old one is kept in NoteVersion) and send it back to review.

    The automatic checks are run again on the new text; the scans' flags are cleared until the next scan,
    so an edit can never carry a real note into a release unchecked.
    """
    note = _locked(note)
    if note.origin != Note.Origin.SYNTHETIC:
        raise TransitionError(f"Note {note.pk} is a real note; only synthetic notes are edited.")
    if note.review_state not in EDITABLE_STATES:
        raise TransitionError(f"Cannot edit note {note.pk}: it is {_state_label(note.review_state).lower()}; "
                              "only a note pending review or needing an edit can be edited (reopen it first).")
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise ValidationError("The edited text is empty.")
    if text == note.text.strip():
        raise ValidationError("The text is unchanged; nothing to save.")
    meta = dict(note.metadata or {})
    NoteVersion.objects.create(note=note, version=note.version, text=note.text, checks=meta.get("checks") or {},
                               edited_by=actor, edit_reason=reason.strip())
    from_state = note.review_state
    inputs = meta.get("symptoms") or []
    meta["checks"] = note_check(text, language=note.language, symptoms=inputs if isinstance(inputs, list) else [],
                                example=meta.get("example_text") or "").as_dict()
    note.metadata = meta
    note.text = text
    note.version += 1
    note.content_hash = note_content_hash(origin=note.origin, icd_code=note.icd_code, text=text)
    note.review_state = S.PENDING_REVIEW
    note.review_reason = ""
    note.near_duplicate_of = None
    note.duplicate_jaccard = None
    note.memorisation_real_note = None
    note.memorisation_ngram = note.memorisation_score = None
    note.memorised = False
    note.memorisation_checked_version = None
    note.flag_override = False
    try:
        with transaction.atomic():
            note.save()
    except IntegrityError as error:
        raise ValidationError("Another note of this code already has exactly this text.") from error
    audit_write(actor=actor, action=AuditEvent.EDIT_NOTE, obj=note, from_state=from_state, to_state=note.review_state,
                reason=reason.strip(), extra={"version": note.version, "previous_version": note.version - 1})
    return note


@transaction.atomic
def do_override_note_flag(*, actor: AbstractBaseUser, note: Note, reason: str) -> Note:
    """Let a flagged note (near duplicate or memorised) into releases: a deliberate, explained decision."""
    note = _locked(note)
    if not note.flagged:
        raise TransitionError(f"Note {note.pk} is not flagged; there is nothing to override.")
    if note.flag_override:
        raise TransitionError(f"Note {note.pk} is already released from its flag.")
    if not reason.strip():
        raise TransitionError("Overriding a flag needs a reason.")
    note.flag_override = True
    note.save(update_fields=["flag_override"])
    audit_write(actor=actor, action=AuditEvent.OVERRIDE_NOTE_FLAG, obj=note, reason=reason.strip(), extra={
        "near_duplicate_of": note.near_duplicate_of_id, "memorised": note.memorised,
        "memorisation_real_note": note.memorisation_real_note_id, "memorisation_ngram": note.memorisation_ngram,
        "version": note.version})
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
        raise TransitionError(f"Bulk action must be one of {', '.join(BULK_ACTIONS)}.")
    synthetic = notes.filter(origin=Note.Origin.SYNTHETIC)
    return BulkPreview(matching=notes.count(), eligible=synthetic.filter(review_state__in=transition.sources).count(),
                       action=action)


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
        raise TransitionError(f"{transition.label}: a reason is required.")
    ids = list(notes.filter(origin=Note.Origin.SYNTHETIC, review_state__in=transition.sources)
               .values_list("id", flat=True))  # the queue's queryset aggregates; rows are locked by id
    eligible = list(Note.objects.filter(pk__in=ids, review_state__in=transition.sources)
                    .select_for_update().order_by("id"))
    if len(eligible) != expected or preview.eligible != expected:
        raise TransitionError(f"The filter now selects {len(eligible)} notes for this action, not the {expected} "
                              "of the preview; preview again.")
    from_states = {}
    for note in eligible:
        from_states[note.pk] = note.review_state
        note.review_state = transition.target
        note.review_reason = reason.strip()
    Note.objects.bulk_update(eligible, ["review_state", "review_reason"], batch_size=1000)
    audit_write_many(audit_record(actor=actor, action=transition.event, obj=note, from_state=from_states[note.pk],
                                  to_state=transition.target, reason=reason.strip(),
                                  extra={"version": note.version, "bulk": True}) for note in eligible)
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
