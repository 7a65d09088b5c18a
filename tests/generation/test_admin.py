"""Django admin cannot bypass the audit trail: notes, curation rows, studies, ratings and releases are shown read-only
(no add, change or delete; a POST changes nothing), and a change page never lists every note in a select."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import reverse

from generation.models import GenerationJob, Note
from medsyn_site.admin import AuditedModelAdmin
from medsyn_site.core.models import AuditRecord
from review.assessment.models import Assignment, Rating, Study, StudyItem
from review.assessment.services import (
    assignment_next,
    do_build_study_pool,
    do_create_study,
    do_open_study,
    do_submit_rating,
)
from review.curation.models import NoteCuration, ScanJob
from review.curation.selectors import note_curation
from review.curation.services import do_edit_note, do_transition_note
from review.releases.models import Release, ReleaseExport, ReleaseNote
from review.releases.services import do_create_release
from tests.generation.factories import NoteFactory
from tests.review.conftest import CURATION_SYNTHETIC, REAL_TEXTS, synthetic_make
from tests.review.curation.factories import NoteCurationFactory

AUDITED = (Note, GenerationJob, NoteCuration, ScanJob, Study, StudyItem, Assignment, Rating, Release, ReleaseNote,
           ReleaseExport, AuditRecord)


def _change_url(model, pk) -> str:
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_change", args=[pk])


@pytest.fixture
def admin_client(client, make_user):
    client.force_login(make_user("admin"))
    return client


@pytest.fixture
def flagged(db):
    """A synthetic note flagged against two other notes (the two foreign keys of its curation row)."""
    real = NoteFactory(text="Жалобы на сухой кашель и температуру до 38 в течение двух дней.", icd_code="J06.9")
    twin = synthetic_make(CURATION_SYNTHETIC[0], "J06.9")
    note = synthetic_make(CURATION_SYNTHETIC[1], "J06.9")
    NoteCurationFactory(note=note, state="pending_review", near_duplicate_of=twin, duplicate_jaccard=0.9,
                        memorised=True, memorisation_real_note=real, memorisation_ngram=14)
    return note


def _more_notes(count: int) -> None:
    Note.objects.bulk_create(NoteFactory.build(text=f"Жалобы на насморк, визит {n}.") for n in range(count))


def test_every_audited_model_is_registered_read_only():
    for model in AUDITED:
        model_admin = admin.site._registry.get(model)
        assert isinstance(model_admin, AuditedModelAdmin), model
        assert not model_admin.has_add_permission(None)
        assert not model_admin.has_change_permission(None) and not model_admin.has_delete_permission(None)
        for inline in model_admin.get_inline_instances(None):
            assert not inline.has_add_permission(None, None) and not inline.has_change_permission(None)


def test_the_change_page_of_a_note_is_read_only_and_does_not_grow_with_the_notes(admin_client, flagged):
    pages = {}
    for model, pk in ((Note, flagged.pk), (NoteCuration, flagged.pk)):
        response = admin_client.get(_change_url(model, pk))
        page = response.content.decode()
        assert response.status_code == 200
        assert "<select" not in page and "<textarea" not in page and 'name="_save"' not in page, model
        pages[model] = len(response.content)
    _more_notes(300)
    for model, size in pages.items():  # a select of every note would have grown by 300 options
        assert abs(len(admin_client.get(_change_url(model, flagged.pk)).content) - size) < 200, model


def test_a_post_to_the_change_forms_changes_nothing_and_writes_no_audit(admin_client, flagged):
    audit_before = AuditRecord.objects.count()
    text, metadata = flagged.text, flagged.metadata
    response = admin_client.post(_change_url(Note, flagged.pk), {
        "origin": "synthetic", "text": "Подменённый текст без аудита.", "icd_code": "J06.9", "icd_category": "J06",
        "language": "ru", "source_dataset": "generated", "split": "", "metadata": "{}", "version": 7, "_save": "Save"})
    assert response.status_code == 403
    response = admin_client.post(_change_url(NoteCuration, flagged.pk), {
        "state": "approved", "reason": "", "memorised": "", "flag_override": "on", "_save": "Save"})
    assert response.status_code == 403
    flagged.refresh_from_db()
    curation = note_curation(flagged)
    assert (flagged.text, flagged.metadata, flagged.version) == (text, metadata, 1)
    assert (curation.state, curation.flag_override, curation.memorised) == ("pending_review", False, True)
    delete = reverse("admin:generation_note_delete", args=[flagged.pk])
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert admin_client.post(reverse("admin:generation_note_add"), {"text": "x"}).status_code == 403
    assert Note.objects.filter(pk=flagged.pk).exists() and AuditRecord.objects.count() == audit_before


def test_every_audited_list_and_change_page_opens_without_bulk_delete(admin_client, make_user, flagged):
    curator = make_user("curator")
    do_edit_note(actor=curator, note=flagged, text=CURATION_SYNTHETIC[2], reason="typo")
    for n, text in enumerate(REAL_TEXTS * 2):
        NoteFactory(text=f"{text} Визит {n}.", icd_code="J06")
        NoteFactory(synthetic=True, text=f"{text} Синтетика {n}.", icd_code="J06",
                    metadata={"generation_model": "gpt-4", "prompt_variant": "symptoms", "job_id": 1})
    study = do_create_study(actor=curator, name="Admin study", overlap_k=1)
    do_build_study_pool(actor=curator, study=study, n_per_origin=2, seed=1)
    do_open_study(actor=curator, study=study)
    rater = make_user("physician")
    assignment = assignment_next(study=study, physician=rater)
    do_submit_rating(study=study, physician=rater, token=assignment.item.token,
                     answers={"origin": "real", "confidence": "3", "realism": "4", "plausibility": "4",
                              "consistency": "5", "language": "3"})
    approved = synthetic_make(CURATION_SYNTHETIC[3], "G43.0")
    do_transition_note(actor=curator, note=approved, action="submit")
    do_transition_note(actor=curator, note=approved, action="approve")
    NoteCurationFactory(note=approved, scanned=True)
    do_create_release(actor=curator, name="admin-release", filters={}, queue_export=False)

    for model in AUDITED:
        changelist = admin_client.get(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"))
        assert changelist.status_code == 200, model
        assert 'value="delete_selected"' not in changelist.content.decode(), model
        row = model.objects.order_by("pk").first()
        if row is not None:
            page = admin_client.get(_change_url(model, row.pk))
            assert page.status_code == 200 and 'name="_save"' not in page.content.decode(), model
    versions = admin_client.get(_change_url(Note, flagged.pk)).content.decode()
    assert "typo" in versions and curator.username in versions  # the earlier version, who replaced it and why
