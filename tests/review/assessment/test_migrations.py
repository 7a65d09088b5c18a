"""assessment 0003: items of existing studies take their study's k as their slots, and the claim constraints hold
them (and back)."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction

from tests.scratch_database import SCRATCH, state_apps

BEFORE = [("assessment", "0002_study_blinding_report")]
AFTER = [("assessment", "0003_item_claims_within_k")]


@pytest.mark.django_db
def test_items_of_existing_studies_take_their_study_k_and_go_back(scratch_database):
    apps = state_apps(scratch_database, BEFORE)
    user = apps.get_model("auth", "User").objects.using(SCRATCH).create(username="curator-before-claims")
    notes = apps.get_model("generation", "Note").objects.using(SCRATCH)
    studies = apps.get_model("assessment", "Study").objects.using(SCRATCH)
    items = apps.get_model("assessment", "StudyItem").objects.using(SCRATCH)
    old = {}
    for k, claims in ((3, 2), (5, 5)):
        study = studies.create(name=f"k={k}", questions={"likert": []}, overlap_k=k, created_by=user, state="open")
        note = notes.create(origin="real", text=f"Жалобы на кашель {k} дней.", icd_code="J06", icd_category="J06",
                            source_dataset="RuMedTop3", content_hash=f"{k}" * 64)
        old[k] = items.create(study=study, note=note, token=f"tok-{k}", display_text="…", diagnosis_code="J06",
                              is_synthetic=False, length_band="short", rank=k, active_assignments=claims).pk

    apps = state_apps(scratch_database, AFTER)
    items = apps.get_model("assessment", "StudyItem").objects.using(SCRATCH)
    assert {k: (items.get(pk=pk).slots, items.get(pk=pk).active_assignments) for k, pk in old.items()} == {
        3: (3, 2), 5: (5, 5)}
    with pytest.raises(IntegrityError), transaction.atomic(using=SCRATCH):
        items.filter(pk=old[5]).update(active_assignments=6)

    apps = state_apps(scratch_database, BEFORE)
    items = apps.get_model("assessment", "StudyItem").objects.using(SCRATCH)
    items.filter(pk=old[5]).update(active_assignments=6)  # no constraint any more
    assert items.get(pk=old[3]).active_assignments == 2
