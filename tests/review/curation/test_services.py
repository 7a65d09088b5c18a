"""The curation lifecycle: transitions, edits as versions, flag overrides, bulk actions and their audit trail; the one
definition of releasable; memorisation checks voided by an import of real notes."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from generation.models import Note, NoteVersion
from generation.services import NoteRow, note_content_hash, notes_import
from medsyn_site.core.models import AuditRecord
from medsyn_site.core.text import words
from review.curation.models import NoteCuration
from review.curation.selectors import HELD_BACK, curation_notes, held_back_counts, notes_releasable, release_blockers
from review.curation.services import (
    TRANSITIONS,
    TransitionError,
    bulk_preview,
    do_bulk_transition_notes,
    do_edit_note,
    do_override_note_flag,
    do_transition_note,
    text_diff_html,
)
from review.releases.services import do_create_release, release_preview
from tests.generation.factories import NoteFactory
from tests.review.curation.factories import NoteCurationFactory

STATES = ("generated", "pending_review", "approved", "rejected", "needs_edit")


def _audit(note: Note) -> list[tuple]:
    return list(AuditRecord.objects.filter(object_type="Note", object_id=str(note.pk)).order_by("id")
                .values_list("actor__username", "action", "from_state", "to_state", "reason"))


@pytest.mark.parametrize("state", STATES)
@pytest.mark.parametrize("action", list(TRANSITIONS))
def test_every_action_from_every_state(curation_pool, make_user, state, action):
    curator = make_user("curator")
    note = curation_pool["synthetic"][0]
    NoteCurationFactory(note=note, state=state)
    transition = TRANSITIONS[action]
    if state in transition.sources:
        moved = do_transition_note(actor=curator, note=note, action=action, reason="причина")
        assert moved.curation.state == transition.target == NoteCuration.objects.get(note=note).state
        assert _audit(note) == [(curator.username, f"{action}_note", state, transition.target, "причина")]
    else:
        with pytest.raises(TransitionError, match=f"“{transition.label}” does not apply to note {note.pk}: it is"):
            do_transition_note(actor=curator, note=note, action=action, reason="причина")
        assert NoteCuration.objects.get(note=note).state == state
        assert _audit(note) == []


def test_full_lifecycle_with_reasons_and_refusals(curation_pool, make_user):
    curator = make_user("curator")
    note = curation_pool["synthetic"][1]
    do_transition_note(actor=curator, note=note, action="submit")
    with pytest.raises(TransitionError, match="a reason is required"):
        do_transition_note(actor=curator, note=note, action="reject", reason="  ")
    do_transition_note(actor=curator, note=note, action="reject", reason="Выдуманный препарат")
    with pytest.raises(TransitionError, match="it is rejected, and only a note that is pending review can take it"):
        do_transition_note(actor=curator, note=note, action="approve")
    do_transition_note(actor=curator, note=note, action="reopen", reason="Пересмотр")
    do_transition_note(actor=curator, note=note, action="approve")
    assert [row[1:4] for row in _audit(note)] == [
        ("submit_note", "generated", "pending_review"), ("reject_note", "pending_review", "rejected"),
        ("reopen_note", "rejected", "pending_review"), ("approve_note", "pending_review", "approved")]
    with pytest.raises(TransitionError, match="Unknown curation action"):
        do_transition_note(actor=curator, note=note, action="publish")


def test_real_notes_are_not_curated(curation_pool, make_user):
    with pytest.raises(TransitionError, match="real note"):
        do_transition_note(actor=make_user("curator"), note=curation_pool["real"][0], action="submit")


def test_edit_makes_a_new_version_and_keeps_the_original(curation_pool, make_user):
    curator = make_user("curator")
    note = curation_pool["synthetic"][0]
    original = note.text
    with pytest.raises(TransitionError, match="only a note pending review or needing an edit"):
        do_edit_note(actor=curator, note=note, text="новый текст", reason="")
    do_transition_note(actor=curator, note=note, action="submit")
    do_transition_note(actor=curator, note=note, action="request_edit", reason="Убрать возраст")
    NoteCurationFactory(note=note, scanned=True, memorised=True, memorisation_real_note=curation_pool["real"][0],
                        near_duplicate_of=curation_pool["synthetic"][1], duplicate_jaccard=0.9, flag_override=True)
    edited_text = original.replace("Пациентка 45 лет", "Пациентка")
    edited = do_edit_note(actor=curator, note=note, text=edited_text, reason="Возраст убран")
    curation = NoteCuration.objects.get(note=note)
    assert (edited.version, edited.text, edited.curation.state) == (2, edited_text, "pending_review")
    assert Note.objects.get(pk=note.pk).text == edited_text and curation.state == "pending_review"
    # both scans' flags and checks were about the old text; the override went with them
    assert not curation.flagged and not curation.flag_override and curation.memorisation_real_note is None
    assert curation.memorisation_checked_version is None and curation.duplicates_checked_version is None
    # the automatic checks ran again on the new text ("лет" gone; numbers are not words)
    assert edited.metadata["checks"]["scores"]["words"] == len(words(original)) - 1 == len(words(edited_text))
    kept = NoteVersion.objects.get(note=note)
    assert (kept.version, kept.text, kept.edit_reason, kept.edited_by) == (1, original, "Возраст убран", curator)
    diff = text_diff_html(kept.text, edited.text)
    assert diff.startswith("Пациентка<del> 45 лет</del> жалуется на &quot;сухой&quot; кашель")
    assert "<ins>" not in diff
    assert [row[1:4] for row in _audit(note)][-1] == ("edit_note", "needs_edit", "pending_review")
    with pytest.raises(ValidationError, match="unchanged"):
        do_edit_note(actor=curator, note=edited, text=edited_text + "  ", reason="")
    other = curation_pool["synthetic"][3]
    Note.objects.filter(pk=other.pk).update(icd_code=note.icd_code, content_hash=note_content_hash(
        origin="synthetic", icd_code=note.icd_code, text=other.text))
    with pytest.raises(ValidationError, match="already has exactly this text"):
        do_edit_note(actor=curator, note=edited, text=other.text, reason="")
    assert Note.objects.get(pk=note.pk).version == 2 and NoteVersion.objects.filter(note=note).count() == 1


def test_flag_override_needs_a_flag_and_a_reason(curation_pool, make_user):
    curator = make_user("curator")
    note = curation_pool["synthetic"][2]
    with pytest.raises(TransitionError, match="not flagged"):
        do_override_note_flag(actor=curator, note=note, reason="ok")
    NoteCurationFactory(note=note, memorised=True, memorisation_real_note=curation_pool["real"][2],
                        memorisation_ngram=14)
    with pytest.raises(TransitionError, match="needs a reason"):
        do_override_note_flag(actor=curator, note=note, reason="")
    do_override_note_flag(actor=curator, note=note, reason="Общая фраза, не копия")
    record = AuditRecord.objects.get(action="override_note_flag")
    assert record.actor == curator and record.extra["memorisation_ngram"] == 14
    assert record.reason == "Общая фраза, не копия"
    with pytest.raises(TransitionError, match="already"):
        do_override_note_flag(actor=curator, note=note, reason="again")


def test_bulk_action_over_a_filter_with_its_preview(curation_pool, make_user):
    curator = make_user("curator")
    notes = curation_notes(filters={"model": "gpt-4"})
    preview = bulk_preview(notes=notes, action="submit")
    assert (preview.matching, preview.eligible) == (3, 3)
    assert do_bulk_transition_notes(actor=curator, notes=notes, action="submit", expected=3) == 3
    pending = curation_notes(filters={"state": "pending_review"})
    assert {n.metadata["generation_model"] for n in pending} == {"gpt-4"}
    do_transition_note(actor=curator, note=pending[0], action="approve")
    preview = bulk_preview(notes=curation_notes(filters={"model": "gpt-4"}), action="approve")
    assert (preview.matching, preview.eligible, preview.skipped) == (3, 2, 1)
    with pytest.raises(TransitionError, match="not the 3 of the preview"):
        do_bulk_transition_notes(actor=curator, notes=curation_notes(filters={"model": "gpt-4"}), action="approve",
                                 expected=3)
    assert curation_notes(filters={"state": "approved"}).count() == 1
    with pytest.raises(TransitionError, match="reason is required"):
        do_bulk_transition_notes(actor=curator, notes=curation_notes(filters={"model": "gpt-4"}), action="reject",
                                 expected=2)
    assert do_bulk_transition_notes(actor=curator, notes=curation_notes(filters={"model": "gpt-4"}),
                                    action="reject", reason="Пакетно", expected=2) == 2
    rejected = AuditRecord.objects.filter(action="reject_note")
    assert rejected.count() == 2 and {r.reason for r in rejected} == {"Пакетно"}
    assert all(r.extra["bulk"] and r.actor == curator for r in rejected)


def test_queue_filters_and_sorts(curation_pool, make_user):
    synthetic = curation_pool["synthetic"]
    NoteCurationFactory(note=synthetic[4], near_duplicate_of=synthetic[0], duplicate_jaccard=0.9)
    Note.objects.filter(pk=synthetic[5].pk).update(metadata={**synthetic[5].metadata, "checks": {"passed": False}})
    assert curation_notes(filters={"code": "j"}).count() == 2
    assert curation_notes(filters={"job": 2}).count() == 3
    assert curation_notes(filters={"variant": "code"}).count() == 0
    assert [n.pk for n in curation_notes(filters={"flag": "duplicate"})] == [synthetic[4].pk]
    assert curation_notes(filters={"flag": "clean"}).count() == 5
    assert curation_notes(filters={"flag": "unchecked"}).count() == 6
    assert [n.pk for n in curation_notes(filters={"check": "fail"})] == [synthetic[5].pk]
    assert [round(n.recall, 1) for n in curation_notes(filters={"recall_min": 0.65}, sort="-recall")] == [0.9, 0.8,
                                                                                                           0.7]
    assert curation_notes(filters={"detectability_min": 0.0}).count() == 0  # never rated: no detectability


def test_queue_reads_the_recall_of_notes_imported_from_a_medsyn_file(curation_pool):
    text = "Жалобы на боль в горле и насморк, температура 37,5 второй день."
    NoteFactory(synthetic=True, text=text, icd_code="J02.9", source_dataset="MedSyn",
                metadata={"generation_model": "gpt-4", "prior": "symptoms", "symptoms_recall": 0.42})
    assert [round(n.recall, 2) for n in curation_notes(filters={"code": "J02"})] == [0.42]
    assert curation_notes(filters={"recall_max": 0.45}).count() == 1


def test_a_note_gets_its_curation_row_on_its_first_action(curation_pool, make_user):
    note = curation_pool["synthetic"][0]
    assert not NoteCuration.objects.exists()
    assert curation_notes(filters={"state": "generated"}).count() == 6  # no row: generated
    with pytest.raises(TransitionError):
        do_transition_note(actor=make_user("curator"), note=note, action="approve")
    assert not NoteCuration.objects.exists()  # a refused action leaves nothing behind
    do_transition_note(actor=make_user("curator"), note=note, action="submit")
    assert list(NoteCuration.objects.values_list("note_id", "state")) == [(note.pk, "pending_review")]
    assert curation_notes(filters={"state": "generated"}).count() == 5


def test_releasable_has_one_definition(curation_pool, make_user):
    """Release preview and creation, the queue's filters and the note pane agree on every note."""
    curator = make_user("curator")
    synthetic = curation_pool["synthetic"]
    for note in synthetic[:5]:
        do_transition_note(actor=curator, note=note, action="submit")
        do_transition_note(actor=curator, note=note, action="approve")
    do_transition_note(actor=curator, note=synthetic[5], action="submit")
    real = curation_pool["real"][0]
    NoteCurationFactory(note=synthetic[0], scanned=True)
    NoteCurationFactory(note=synthetic[1], memorisation_checked_version=1)
    NoteCurationFactory(note=synthetic[3], scanned=True, memorised=True, memorisation_real_note=real)
    NoteCurationFactory(note=synthetic[4], scanned=True, near_duplicate_of=synthetic[0], flag_override=True)
    unchecked_memorisation, unchecked_duplicates, memorised, _duplicate = HELD_BACK
    blockers = {note.pk: release_blockers(Note.objects.get(pk=note.pk)) for note in synthetic}
    assert blockers == {synthetic[0].pk: [], synthetic[1].pk: [unchecked_duplicates],
                        synthetic[2].pk: [unchecked_memorisation, unchecked_duplicates],
                        synthetic[3].pk: [memorised], synthetic[4].pk: [],
                        synthetic[5].pk: ["not approved (Pending review)"]}
    everything = curation_notes(filters={})
    releasable = {synthetic[0].pk, synthetic[4].pk}
    assert set(notes_releasable(everything).values_list("pk", flat=True)) == releasable
    assert {n.pk for n in curation_notes(filters={"flag": "releasable"})} == releasable
    assert {n.pk for n in curation_notes(filters={"flag": "held_back"})} == {n.pk for n in synthetic[1:4]}
    counts = {unchecked_memorisation: 1, unchecked_duplicates: 1, memorised: 1}  # each under its first reason
    assert held_back_counts(everything) == counts
    preview = release_preview(filters={})
    assert (preview.synthetic, preview.held_back) == (2, counts)
    release = do_create_release(actor=curator, name="one-definition", filters={}, queue_export=False)
    assert set(release.notes.values_list("note_id", flat=True)) == releasable
    assert {n.pk for n in curation_notes(filters={"flag": "unchecked"})} == {synthetic[1].pk, synthetic[2].pk,
                                                                             synthetic[5].pk}


def test_importing_real_notes_voids_every_memorisation_check_with_one_audit_record(curation_pool):
    synthetic = curation_pool["synthetic"]
    NoteCurationFactory(note=synthetic[0], scanned=True, state="approved")
    NoteCurationFactory(note=synthetic[1], scanned=True, memorised=True)
    notes_import(rows=[NoteRow(line=1, text="Кашель и насморк третий день.", icd_code="J06.9", metadata={})],
                 source="more.jsonl", origin="synthetic", source_dataset="MedSyn")
    assert NoteCuration.objects.filter(memorisation_checked_version=1).count() == 2  # synthetic notes: no new reals

    rows = [NoteRow(line=i, text=f"Жалобы на кашель {word} дня.", icd_code="J06.9", metadata={})
            for i, word in enumerate(("два", "три"), start=1)]
    notes_import(rows=rows, source="new.jsonl", origin="real", source_dataset="RuMedTop3")
    assert set(NoteCuration.objects.values_list("memorisation_checked_version", "duplicates_checked_version")) == {
        (None, 1)}
    assert _curation_flags(synthetic[1]) == (True, "generated")  # a flag stays: only the check is void
    record = AuditRecord.objects.get(action="void_memorisation_checks")
    first = Note.objects.get(origin="real", text="Жалобы на кашель два дня.")
    assert (record.actor, record.object_type, record.object_id) == (None, "Note", str(first.pk))
    assert record.extra == {"real_notes_imported": 2, "checks_voided": 2}


def _curation_flags(note: Note) -> tuple[bool, str]:
    curation = NoteCuration.objects.get(note=note)
    return curation.memorised, curation.state
