"""The assessment protocol's services: pool matching, states, assignment under concurrency, blinding."""

from __future__ import annotations

import threading
from collections import Counter

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection

from medsyn_site.core.models import AuditRecord
from review.assessment.blinding import length_band, rater_text
from review.assessment.models import Assignment, Rating, Study, StudyItem
from review.assessment.services import (
    StudyStateError,
    SyntheticFilter,
    assignment_next,
    do_build_study_pool,
    do_close_study,
    do_create_study,
    do_open_study,
    do_skip_item,
    do_submit_rating,
    do_update_study_questions,
)

ANSWERS = {"origin": "synthetic", "confidence": 4, "realism": 3, "plausibility": 4, "consistency": 5,
           "language": 2, "comment": "ок"}


def _study(make_user, n: int = 6, k: int = 2, **filters) -> tuple[Study, object]:
    curator = make_user("curator")
    study = do_create_study(actor=curator, name=f"study-{n}-{k}-{len(filters)}", overlap_k=k)
    do_build_study_pool(actor=curator, study=study, n_per_origin=n, seed=17,
                        synthetic=SyntheticFilter(**filters), diagnosis_names={"J06": "ОРВИ"})
    study.refresh_from_db()
    return study, curator


def test_rater_text_normalises_real_and_synthetic_alike():
    assert rater_text("  «Кашель»\n\n и  насморк</s>") == '"Кашель" и насморк.'
    assert rater_text("### Ответ: Боль в горле…") == "Боль в горле."
    assert rater_text("Жалобы на кашель.") == "Жалобы на кашель."
    assert length_band("a " * 10) == "short" and length_band("a " * 45) == "long"


def test_pool_is_matched_by_category_and_length(make_user, note_pool):
    study, _ = _study(make_user, n=6)
    items = list(study.items.all())
    assert Counter(i.is_synthetic for i in items) == {True: 6, False: 6}
    by_category = Counter((i.diagnosis_code, i.is_synthetic) for i in items)
    for category in {i.diagnosis_code for i in items}:
        assert by_category[(category, True)] == by_category[(category, False)]
    assert study.pool_report["pairs"] == 6 and study.pool_report["short_of_request"] == 0
    assert study.pool_report["matched_category_and_band"] + study.pool_report["matched_category_only"] == 6
    assert all("</s>" not in i.display_text and "«" not in i.display_text for i in items)


def test_pool_filters_synthetic_notes_by_model_and_reports_shortfall(make_user, note_pool):
    study, _ = _study(make_user, n=20, models=("gpt-4",))
    synthetic = StudyItem.objects.filter(study=study, is_synthetic=True).select_related("note")
    assert {item.note.metadata["generation_model"] for item in synthetic} == {"gpt-4"}
    assert study.pool_report["pairs"] == 9 and study.pool_report["short_of_request"] == 11


def test_states_questions_frozen_and_audited(make_user, note_pool):
    study, curator = _study(make_user)
    questions = dict(study.questions, likert=[{"key": "realism", "label": "Realism"}])
    do_update_study_questions(actor=curator, study=study, questions=questions)
    do_open_study(actor=curator, study=study)
    with pytest.raises(StudyStateError, match="frozen"):
        do_update_study_questions(actor=curator, study=study, questions=questions)
    with pytest.raises(StudyStateError):
        do_open_study(actor=curator, study=study)
    do_close_study(actor=curator, study=study)
    actions = list(AuditRecord.objects.filter(object_id=str(study.pk)).values_list("action", flat=True))
    assert actions == ["close_study", "open_study", "update_study_questions", "build_study_pool", "create_study"]


def test_physician_flow_resume_revise_skip(make_user, note_pool):
    study, curator = _study(make_user, n=3, k=1)
    do_open_study(actor=curator, study=study)
    doctor = make_user("physician")
    first = assignment_next(study=study, physician=doctor)
    assert assignment_next(study=study, physician=doctor).pk == first.pk  # resumes where it stopped
    rating = do_submit_rating(study=study, physician=doctor, token=first.item.token, answers=ANSWERS)
    first.refresh_from_db()
    assert first.status == "done" and first.seconds_on_item >= 0
    submitted = AuditRecord.objects.get(action="submit_rating", object_type="Rating", object_id=str(rating.pk))
    assert submitted.actor == doctor and (submitted.from_state, submitted.to_state) == ("assigned", "done")
    revised = do_submit_rating(study=study, physician=doctor, token=first.item.token,
                               answers=dict(ANSWERS, origin="real"))
    assert revised.pk == rating.pk and revised.revisions == 1 and revised.judged_synthetic is False
    second = assignment_next(study=study, physician=doctor)
    assert second.item_id != first.item_id
    with pytest.raises(ValidationError):
        do_skip_item(study=study, physician=doctor, token=second.item.token, reason=" ")
    do_skip_item(study=study, physician=doctor, token=second.item.token, reason="нечитаемо")
    other = make_user("physician")
    seen_by_other = set()
    while (a := assignment_next(study=study, physician=other)) is not None:
        seen_by_other.add(a.item_id)
        do_submit_rating(study=study, physician=other, token=a.item.token, answers=ANSWERS)
    assert second.item_id in seen_by_other and first.item_id not in seen_by_other
    do_close_study(actor=curator, study=study)
    with pytest.raises(StudyStateError):
        do_submit_rating(study=study, physician=doctor, token=first.item.token, answers=ANSWERS)


def test_bad_answers_and_wrong_people_are_refused(make_user, note_pool):
    study, curator = _study(make_user, n=2, k=1)
    do_open_study(actor=curator, study=study)
    doctor = make_user("physician")
    item = assignment_next(study=study, physician=doctor).item
    with pytest.raises(ValidationError) as caught:
        do_submit_rating(study=study, physician=doctor, token=item.token,
                         answers={"origin": "maybe", "confidence": 9, "realism": "x"})
    assert {"origin", "confidence", "realism", "plausibility"} <= set(caught.value.message_dict)
    with pytest.raises(PermissionDenied):
        assignment_next(study=study, physician=curator)
    with pytest.raises(PermissionDenied):
        do_submit_rating(study=study, physician=make_user("physician"), token=item.token, answers=ANSWERS)


@pytest.mark.django_db(transaction=True)
def test_concurrent_physicians_end_with_exactly_k_ratings_per_note(make_user, note_pool):
    study, curator = _study(make_user, n=9, k=3)
    do_open_study(actor=curator, study=study)
    doctors = [make_user("physician") for _ in range(8)]
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(doctors))

    def rate_everything(doctor) -> None:
        try:
            barrier.wait()
            while (assignment := assignment_next(study=study, physician=doctor)) is not None:
                do_submit_rating(study=study, physician=doctor, token=assignment.item.token, answers=ANSWERS)
        except BaseException as error:  # collected and re-raised in the main thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=rate_everything, args=(d,)) for d in doctors]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    per_item = Counter(Rating.objects.filter(assignment__study=study).values_list("assignment__item", flat=True))
    assert len(per_item) == study.items.count() == 18
    assert set(per_item.values()) == {3}
    pairs = list(Assignment.objects.filter(study=study).values_list("item", "physician"))
    assert len(pairs) == len(set(pairs)) == 18 * 3


def test_each_physician_gets_a_personal_reproducible_order(make_user, note_pool):
    study, curator = _study(make_user, n=9, k=3)
    do_open_study(actor=curator, study=study)

    def order(doctor) -> list[int]:
        seen = []
        while (assignment := assignment_next(study=study, physician=doctor)) is not None:
            seen.append(assignment.item_id)
            do_skip_item(study=study, physician=doctor, token=assignment.item.token, reason="order test")
        return seen

    first, second = order(make_user("physician")), order(make_user("physician"))
    assert sorted(first) == sorted(second) == sorted(study.items.values_list("id", flat=True))
    assert first != second


def test_a_rater_list_admits_only_the_listed_physicians(make_user, note_pool):
    curator = make_user("curator")
    study = do_create_study(actor=curator, name="listed", overlap_k=1)
    do_build_study_pool(actor=curator, study=study, n_per_origin=2, seed=4)
    listed, other = make_user("physician"), make_user("physician")
    do_open_study(actor=curator, study=study, physicians=[listed])
    assert assignment_next(study=study, physician=listed) is not None
    with pytest.raises(PermissionDenied):
        assignment_next(study=study, physician=other)


def test_set_up_study_creates_the_study_and_its_pool_in_one_action(make_user, note_pool):
    from review.assessment.services import do_set_up_study

    curator = make_user("curator")
    study = do_set_up_study(actor=curator, name="set up", instructions="", overlap_k=2, n_per_origin=4, seed=3)
    assert study.pool_report["pairs"] == 4 and study.items.count() == 8
    assert set(study.items.values_list("diagnosis_name", flat=True)) <= {
        "Acute upper respiratory infections of multiple and unspecified sites", "Dorsalgia",
        "Essential (primary) hypertension"}
    actions = list(AuditRecord.objects.filter(object_id=str(study.pk)).values_list("action", flat=True))
    assert sorted(actions) == ["build_study_pool", "create_study"]


# --- question keys (issue 11, item 1) ---------------------------------------------------------------------------

@pytest.mark.parametrize("key", ["<script>alert(1)</script>", "Realism", "1st", "real ism", "a" * 41, "", None, 3,
                                 "реализм", "x-y"])
def test_a_likert_key_must_be_identifier_like(make_user, key):
    from review.assessment.services import DEFAULT_QUESTIONS, questions_validate

    with pytest.raises(ValidationError, match="key"):
        questions_validate(dict(DEFAULT_QUESTIONS, likert=[{"key": key, "label": "Realism"}]))


@pytest.mark.parametrize("key", ["origin", "token", "confidence", "is_synthetic", "judged_synthetic", "comment",
                                 "physician", "item_token", "seconds_on_item", "diagnosis_code", "chapter", "model",
                                 "variant", "csrfmiddlewaretoken"])
def test_a_likert_key_may_not_take_a_reserved_name(key):
    from review.assessment.services import DEFAULT_QUESTIONS, questions_validate

    with pytest.raises(ValidationError, match="reserved"):
        questions_validate(dict(DEFAULT_QUESTIONS, likert=[{"key": key, "label": "x"}]))


def test_likert_keys_are_unique_and_labels_stay_free_text(make_user, note_pool):
    from review.assessment.services import DEFAULT_QUESTIONS, questions_validate

    with pytest.raises(ValidationError, match="unique"):
        questions_validate(dict(DEFAULT_QUESTIONS, likert=[{"key": "realism", "label": "a"},
                                                           {"key": "realism", "label": "b"}]))
    with pytest.raises(ValidationError, match="label"):
        questions_validate(dict(DEFAULT_QUESTIONS, likert=[{"key": "realism", "label": ""}]))
    study, curator = _study(make_user, n=2)
    hostile = [{"key": "realism_2", "label": "<script>alert('x')</script> «Реализм»"}]
    do_update_study_questions(actor=curator, study=study, questions=dict(study.questions, likert=hostile))
    study.refresh_from_db()
    assert study.questions["likert"] == hostile
    with pytest.raises(ValidationError, match="key"):
        do_update_study_questions(actor=curator, study=study, questions=dict(
            study.questions, likert=[{"key": "<img src=x onerror=alert(1)>", "label": "x"}]))


# --- blinding of raters (issue 11, item 4) ----------------------------------------------------------------------

def _physician_who_also(make_user, codename: str):
    from django.contrib.auth.models import Permission

    doctor = make_user("physician")
    doctor.user_permissions.add(Permission.objects.get(content_type__app_label="medsyn_site", codename=codename))
    return type(doctor).objects.get(pk=doctor.pk)  # a fresh object: no cached permissions


@pytest.mark.parametrize("who", ["admin", "view_results", "curate_notes", "run_generation", "manage_studies",
                                 "manage_releases", "download_releases"])
def test_nobody_who_can_see_origins_may_rate(make_user, note_pool, who):
    study, curator = _study(make_user, n=2, k=1)
    do_open_study(actor=curator, study=study)
    rater = make_user("admin") if who == "admin" else _physician_who_also(make_user, who)
    assert rater.has_perm("medsyn_site.rate_notes")
    with pytest.raises(PermissionDenied, match="origins"):
        assignment_next(study=study, physician=rater)
    token = study.items.first().token
    with pytest.raises(PermissionDenied, match="origins"):
        do_submit_rating(study=study, physician=rater, token=token, answers=ANSWERS)
    with pytest.raises(PermissionDenied, match="origins"):
        do_skip_item(study=study, physician=rater, token=token, reason="x")
    assert not Assignment.objects.filter(physician=rater).exists()


def test_a_study_cannot_list_raters_who_can_see_origins(make_user, note_pool):
    study, curator = _study(make_user, n=2, k=1)
    admin = make_user("admin", username="demo_admin")
    with pytest.raises(ValidationError, match="demo_admin"):
        do_open_study(actor=curator, study=study, physicians=[make_user("physician"), admin])
    study.refresh_from_db()
    assert study.state == Study.State.DRAFT


def test_ratings_by_people_who_can_see_origins_are_not_counted(make_user, note_pool):
    from review.assessment.results import ratings_csv, study_results

    study, curator = _study(make_user, n=3, k=2)
    do_open_study(actor=curator, study=study)
    doctor = make_user("physician")
    while (assignment := assignment_next(study=study, physician=doctor)) is not None:
        do_submit_rating(study=study, physician=doctor, token=assignment.item.token, answers=ANSWERS)
    admin = make_user("admin")  # a rating an admin gave before raters were checked, stored as it was
    legacy = Assignment.objects.create(study=study, item=study.items.first(), physician=admin, status="done")
    Rating.objects.create(assignment=legacy, judged_synthetic=True, confidence=5, likert={"realism": 1})
    summary = study_results(study)
    assert summary["n_ratings"] == 6 and summary["n_ratings_not_blind"] == 1
    assert set(summary["per_physician"]) == {doctor.username}
    assert admin.username not in ratings_csv(study)


# --- pools: normaliser report, origin classifier, failed checks (issue 11, item 5) -------------------------------

def test_pool_build_stores_what_the_normaliser_changed_and_the_origin_classifier(make_user, form_pool):
    curator = make_user("curator")
    study = do_create_study(actor=curator, name="form", overlap_k=1)
    do_build_study_pool(actor=curator, study=study, n_per_origin=15, seed=5)
    study.refresh_from_db()
    report = study.blinding_report
    assert report["normaliser"] == {"real": {"notes": 15, "changed": 15}, "synthetic": {"notes": 15, "changed": 15}}
    probe = report["origin_probe"]
    assert probe["n"] == 30 and probe["folds"] == 5 and probe["seed"] == 5
    assert probe["raw"] >= 0.9 and probe["normalised"] == probe["content"] and probe["warning"] is False
    audit = AuditRecord.objects.get(action="build_study_pool", object_id=str(study.pk))
    assert audit.extra["blinding"] == report


def test_pool_build_counts_only_the_notes_the_normaliser_changed(make_user, db):
    from tests.generation.factories import NoteFactory

    for n in range(3):
        NoteFactory(text=f"Жалобы на кашель {n} дней.", icd_code="J06")
        NoteFactory(synthetic=True, text=f"Жалобы на кашель {n} дней" + (",</s>" if n else "."), icd_code="J06")
    curator = make_user("curator")
    study = do_create_study(actor=curator, name="changed", overlap_k=1)
    do_build_study_pool(actor=curator, study=study, n_per_origin=3, seed=1)
    study.refresh_from_db()
    assert study.blinding_report["normaliser"] == {"real": {"notes": 3, "changed": 0},
                                                   "synthetic": {"notes": 3, "changed": 2}}
    assert study.blinding_report["origin_probe"]["skipped"] == "too_small"
    assert {i.display_text for i in study.items.filter(is_synthetic=True)} == {
        f"Жалобы на кашель {n} дней." for n in range(3)}


def test_pool_leaves_out_notes_that_failed_checks_unless_asked(make_user, checked_notes):
    curator = make_user("curator")
    study = do_create_study(actor=curator, name="checks", overlap_k=1)
    report = do_build_study_pool(actor=curator, study=study, n_per_origin=4, seed=2)
    used = set(study.items.filter(is_synthetic=True).values_list("note_id", flat=True))
    assert used == {checked_notes["clean"].pk, checked_notes["overridden"].pk}
    assert report["failed_checks_included"] is False and report["failed_checks_left_out"] == 2
    report = do_build_study_pool(actor=curator, study=study, n_per_origin=4, seed=2, include_failed_checks=True)
    used = set(study.items.filter(is_synthetic=True).values_list("note_id", flat=True))
    assert used == {note.pk for note in checked_notes.values()}
    assert report["failed_checks_included"] is True and report["failed_checks_left_out"] == 0
