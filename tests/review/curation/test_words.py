"""The curation pane speaks in words: check scores by label, history actions and states by label (in English and in
Russian), an edited note's version and editor; and it links to a job page only for a user who may open it."""

from __future__ import annotations

import pytest
from django.urls import reverse
from django.utils import translation

from generation.checks import note_check
from generation.models import Note
from medsyn_site.core.audit import audit_change, audit_history, audit_state_label
from medsyn_site.core.models import AuditEvent, AuditRecord
from review.curation.services import do_edit_note, do_transition_note
from tests.review.conftest import CURATION_SYNTHETIC

EDITED = "Пациентка 45 лет жалуется на сухой кашель, насморк и слабость; температура 37,8 держится три дня подряд."


def _pane(client, note, **headers) -> str:
    return client.get(reverse("curation:curation_note", args=[note.pk]), HTTP_HX_REQUEST="true",
                      **headers).content.decode()


def test_the_history_says_actions_and_states_in_words(client, make_user, curation_pool):
    curator = make_user("curator")
    note = curation_pool["synthetic"][1]
    do_transition_note(actor=curator, note=note, action="submit")
    do_transition_note(actor=curator, note=note, action="reject", reason="не по теме")
    client.force_login(curator)
    pane = _pane(client, note)
    assert "Note rejected (Pending review → Rejected) · version 1: не по теме" in pane
    assert "Note submitted for review (Generated → Pending review)" in pane
    assert "reject_note" not in pane.replace('data-action="reject_note"', "") and "pending_review →" not in pane
    russian = _pane(client, note, HTTP_ACCEPT_LANGUAGE="ru")
    assert "Запись отклонена (На проверке → Отклонена)" in russian
    assert "Запись отправлена на проверку (Сгенерирована → На проверке)" in russian


@translation.override("en")
def test_every_audit_action_and_written_state_has_words(db):
    for event in AuditEvent:
        assert str(event.label) != event.value and "_" not in str(event.label), event
    for state, words in (("pending_review", "Pending review"), ("needs_edit", "Needs edit"), ("open", "Open"),
                         ("running", "Running"), ("created", "Created"), ("assigned", "Assigned")):
        assert audit_state_label(state) == words
    assert audit_change("", "queued") == "Queued" and audit_change("", "") == ""
    assert audit_change("pending_review", "pending_review") == "Pending review"
    record = AuditRecord.objects.create(action="approve_note", object_type="Note", object_id="1",
                                        from_state="pending_review", to_state="approved", extra={"version": 3})
    entry = audit_history(Note(pk=1))[0]
    assert (entry.record, entry.action, entry.change, entry.version) == (record, "Note approved",
                                                                         "Pending review → Approved", 3)


def test_check_scores_and_reasons_are_shown_by_label(client, make_user, curation_pool):
    note = curation_pool["synthetic"][0]
    report = note_check("Кашель.", symptoms=["кашель", "боль в груди"], example=CURATION_SYNTHETIC[2])
    note.metadata = {**note.metadata, "checks": report.as_dict()}
    note.save(update_fields=["metadata"])
    client.force_login(make_user("curator"))
    pane = _pane(client, note)
    for label in ("Length in words", "Letters in the note&#x27;s alphabet", "Symptoms mentioned",
                  "Overlap with the example"):
        assert label in pane, label
    for key in ("script_share", "example_jaccard", "symptom_recall"):
        assert f">{key}<" not in pane  # the key is only the row's data-check, never its text
    assert "too short: 1 words (minimum 10)" in pane and "symptom recall 0.50 below 0.65; missing: боль в груди" in pane


def test_an_edited_note_shows_its_version_editor_and_whose_inputs(client, make_user, curation_pool):
    curator = make_user("curator")
    note = curation_pool["synthetic"][0]
    do_transition_note(actor=curator, note=note, action="submit")
    do_edit_note(actor=curator, note=note, text=EDITED, reason="опечатка")
    client.force_login(curator)
    pane = _pane(client, note)
    assert f"Edited by a curator: version 2 was saved by {curator.username}" in pane
    assert "Inputs of version 1 (as the model wrote it)" in pane and "Scores of version 2" in pane
    assert "Note edited (Pending review) · version 2: опечатка" in pane


@pytest.mark.parametrize(("role", "linked"), [("curator", False), ("admin", True)])
def test_the_job_is_linked_only_for_who_may_open_it(client, make_user, curation_pool, role, linked):
    user = make_user(role)
    note = curation_pool["synthetic"][0]
    job_url = reverse("generation:job", args=[note.metadata["job_id"]])
    client.force_login(user)
    for pane in (_pane(client, note), client.get(reverse("curation:curation_note", args=[note.pk])).content.decode()):
        assert (f'href="{job_url}"' in pane) is linked
        assert 'data-testid="note-job">' in pane  # the job is still named, as plain text
    assert (client.get(job_url).status_code != 403) is linked
