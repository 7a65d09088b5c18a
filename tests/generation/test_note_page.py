"""The generated note's page says what the reader sees: an edited note shows its version, who edited it and when, and
labels the model's provenance as that of version 1; checks show by label, and their reasons in words."""

from __future__ import annotations

from django.urls import reverse
from django.utils import translation

from generation.checks import CHECK_SCORES, FAILURES, check_reasons_shown, check_scores_shown, note_check
from generation.models import Note
from review.curation.services import do_edit_note, do_transition_note
from tests.generation.factories import NoteFactory
from tests.review.conftest import CURATION_SYNTHETIC, synthetic_make

EDITED = "Пациентка 45 лет жалуется на сухой кашель, насморк и слабость; температура 37,8 держится три дня подряд."


def _page(client, note: Note) -> str:
    response = client.get(reverse("generation:note", args=[note.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_an_edited_note_shows_its_version_editor_and_whose_provenance(client, make_user, db):
    note = synthetic_make(CURATION_SYNTHETIC[0], "J06.9")
    researcher = make_user("researcher")
    client.force_login(researcher)
    fresh = _page(client, note)
    assert "Generated note" in fresh and "edited by a curator" not in fresh and "Provenance of version 1" not in fresh

    curator = make_user("curator")
    do_transition_note(actor=curator, note=note, action="submit")
    do_edit_note(actor=curator, note=note, text=EDITED, reason="опечатка")
    edited = _page(client, Note.objects.get(pk=note.pk))
    assert "· version 2</h1>" in edited
    assert f"Edited by a curator: version 2 was saved by {curator.username} on " in edited
    assert "Current text (version 2, edited by a curator)" in edited and ">Generated note<" not in edited
    assert "Provenance of version 1 (as the model wrote it)" in edited and "Checks of version 2" in edited
    assert f"v1 → v2, by {curator.username} at " in edited and "опечатка" in edited
    assert "prompt(S,E): symptoms and an example note" in edited and ">symptoms_example<" not in edited
    assert CURATION_SYNTHETIC[0].split(";")[0].replace('"', "&quot;") in edited  # version 1's text is kept


def test_the_notes_list_marks_edited_notes(client, make_user, db):
    note = synthetic_make(CURATION_SYNTHETIC[1], "I20.8")
    curator = make_user("curator")
    do_transition_note(actor=curator, note=note, action="submit")
    do_edit_note(actor=curator, note=note, text=EDITED, reason="")
    synthetic_make(CURATION_SYNTHETIC[2], "K21.9")
    client.force_login(make_user("researcher"))
    page = client.get(reverse("generation:notes")).content.decode()
    assert page.count('data-testid="note-edited"') == 1 and "version 2, edited by a curator" in page
    assert "(wrote version 1)" in page


def test_check_scores_and_reasons_on_the_note_page_are_in_words(client, make_user, db):
    report = note_check("Кашель.", symptoms=["кашель", "боль в груди"], example=CURATION_SYNTHETIC[2])
    note = synthetic_make(CURATION_SYNTHETIC[3], "G43.0")
    note.metadata = {**note.metadata, "checks": report.as_dict()}
    note.save(update_fields=["metadata"])
    client.force_login(make_user("researcher"))
    page = _page(client, note)
    assert "Symptoms mentioned</dt><dd>50%" in page and "Overlap with the example</dt><dd>0." in page
    assert ">script_share<" not in page and ">example_jaccard<" not in page
    assert "too short: 1 words (minimum 10)" in page


def test_every_score_and_failure_has_words_and_old_reasons_still_show():
    report = note_check("Вот ответ как языковая модель: headache with fever and cough.", language="ru",
                        symptoms=["кашель"], example="Вот ответ как языковая модель: headache with fever and cough.",
                        prompt="### Задание: напиши анамнез пациента с длинной инструкцией для модели.")
    stored = report.as_dict()
    assert set(stored["scores"]) <= set(CHECK_SCORES)
    assert [failure["code"] for failure in stored["failures"]] == [
        "wrong_language_cyrillic", "symptom_recall", "near_copy", "artifact", "artifact", "english_words"]
    assert all(failure["code"] in FAILURES for failure in stored["failures"])
    with translation.override("en"):
        assert check_reasons_shown(stored) == stored["reasons"]
        assert [score.label for score in check_scores_shown(stored)][:2] == ["Length in words",
                                                                             "Letters in the note's alphabet"]
    old = {"passed": False, "scores": {"a_new_score": 1}, "reasons": ["a reason of an older version"]}
    assert check_reasons_shown(old) == ["a reason of an older version"]
    assert [(score.label, score.value) for score in check_scores_shown(old)] == [("a_new_score", "1")]
    assert check_reasons_shown(None) == [] and check_scores_shown({}) == []


def test_imported_notes_without_checks_say_not_checked(client, make_user, db):
    note = NoteFactory(synthetic=True, text="Импортированная запись без проверок.", icd_code="J06")
    client.force_login(make_user("researcher"))
    assert 'data-testid="checks">Not checked<' in _page(client, note)
