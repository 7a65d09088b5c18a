from __future__ import annotations

import pytest

from review.assessment.models import Assignment, Rating, StudyItem
from review.assessment.services import (
    assignment_next,
    do_build_study_pool,
    do_close_study,
    do_create_study,
    do_open_study,
    do_submit_rating,
)

ANSWERS = {"origin": "synthetic", "confidence": 2, "realism": 4, "plausibility": 4, "consistency": 5, "language": 3}
ALLOWED_ITEM_FIELDS = {"token", "text", "diagnosis_code", "diagnosis_name"}


@pytest.fixture
def study(make_user, note_pool):
    curator = make_user("curator")
    study = do_create_study(actor=curator, name="api", overlap_k=1)
    do_build_study_pool(actor=curator, study=study, n_per_origin=3, seed=2)
    do_open_study(actor=curator, study=study)
    study.curator = curator
    return study


def _token_client(client, user):
    from rest_framework.authtoken.models import Token

    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.get_or_create(user=user)[0].key}"
    return client


def test_physician_rates_a_whole_study_through_the_api(client, make_user, study):
    api = _token_client(client, make_user("physician"))
    listed = api.get("/api/review/studies/").json()
    assert [s["id"] for s in listed] == [study.pk] and set(listed[0]) == {"id", "name", "instructions", "questions"}
    seen = []
    while (response := api.get(f"/api/review/studies/{study.pk}/next/")).status_code == 200:
        item = response.json()
        assert set(item) == ALLOWED_ITEM_FIELDS  # nothing about origin, model, job or provenance
        seen.append(item["token"])
        submitted = api.post(f"/api/review/studies/{study.pk}/submit/",
                             {"token": item["token"], "answers": ANSWERS}, content_type="application/json")
        assert submitted.status_code == 201
    assert response.status_code == 204
    assert sorted(seen) == sorted(StudyItem.objects.filter(study=study).values_list("token", flat=True))


def test_bad_payloads_and_closed_study(client, make_user, study):
    api = _token_client(client, make_user("physician"))
    token = api.get(f"/api/review/studies/{study.pk}/next/").json()["token"]
    url = f"/api/review/studies/{study.pk}/submit/"
    assert api.post(url, {"answers": ANSWERS}, content_type="application/json").status_code == 400
    bad = api.post(url, {"token": token, "answers": {"origin": "x"}}, content_type="application/json")
    assert bad.status_code == 400 and "origin" in bad.json()
    assert api.post(url, {"token": "forged", "answers": ANSWERS}, content_type="application/json").status_code == 403
    assert api.post(f"/api/review/studies/{study.pk}/skip/", {"token": token, "reason": ""},
                    content_type="application/json").status_code == 400
    do_close_study(actor=study.curator, study=study)
    assert api.get(f"/api/review/studies/{study.pk}/next/").status_code == 404


@pytest.mark.parametrize(("role", "rate", "results"), [("physician", 200, 403), ("curator", 403, 200),
                                                       ("researcher", 403, 200), ("admin", 403, 200)])
def test_api_permissions_per_role(client, make_user, study, role, rate, results):
    api = _token_client(client, make_user(role))
    assert api.get(f"/api/review/studies/{study.pk}/next/").status_code == rate
    assert api.get(f"/api/review/studies/{study.pk}/results/").status_code == results


def test_anonymous_gets_nothing(client, study):
    assert client.get(f"/api/review/studies/{study.pk}/next/").status_code in (401, 403)
    assert client.get(f"/api/review/studies/{study.pk}/results/").status_code in (401, 403)


def test_an_admin_is_refused_as_a_rater_with_the_reason(client, make_user, study):
    api = _token_client(client, make_user("admin"))
    for url in ("/api/review/studies/", f"/api/review/studies/{study.pk}/next/"):
        response = api.get(url)
        assert response.status_code == 403 and "origins" in response.json()["detail"], url
    token = StudyItem.objects.filter(study=study).first().token
    submitted = api.post(f"/api/review/studies/{study.pk}/submit/", {"token": token, "answers": ANSWERS},
                         content_type="application/json")
    assert submitted.status_code == 403 and "origins" in submitted.json()["detail"]
    assert not Assignment.objects.filter(study=study).exists()


def test_results_of_an_open_study_are_withheld_from_its_raters(client, make_user, study):
    from django.contrib.auth.models import Group

    doctor = make_user("physician")
    item = assignment_next(study=study, physician=doctor).item
    do_submit_rating(study=study, physician=doctor, token=item.token, answers=ANSWERS)
    doctor.groups.add(Group.objects.get(name="researcher"))  # later also given results
    api = _token_client(client, doctor)
    url = f"/api/review/studies/{study.pk}/results/"
    response = api.get(url)
    assert response.status_code == 403 and "rate in this study" in response.json()["detail"]
    holder = make_user("researcher")  # holds an assignment (stored as it was before raters were checked)
    Assignment.objects.create(study=study, item=item, physician=holder)
    client.defaults.pop("HTTP_AUTHORIZATION")
    assert _token_client(client, holder).get(url).status_code == 403
    client.defaults.pop("HTTP_AUTHORIZATION")
    assert _token_client(client, make_user("researcher")).get(url).status_code == 200
    do_close_study(actor=study.curator, study=study)
    assert _token_client(client, holder).get(url).status_code == 200


def test_pool_api_builds_a_pool_and_takes_failed_checks_only_when_asked(client, make_user, checked_notes):
    curator = make_user("curator")
    draft = do_create_study(actor=curator, name="pool api", overlap_k=1)
    api = _token_client(client, curator)
    url = f"/api/review/studies/{draft.pk}/pool/"
    response = api.post(url, {"n_per_origin": 4, "seed": 2}, content_type="application/json")
    assert response.status_code == 200
    body = response.json()
    assert body["pool_report"]["failed_checks_left_out"] == 2 and body["pool_report"]["pairs"] == 2
    assert body["blinding_report"]["normaliser"]["synthetic"]["notes"] == 2
    assert body["blinding_report"]["origin_probe"]["skipped"] == "too_small"
    response = api.post(url, {"n_per_origin": 4, "seed": 2, "include_failed_checks": True},
                        content_type="application/json")
    assert response.json()["pool_report"]["pairs"] == 4 and response.json()["pool_report"]["failed_checks_included"]
    assert api.post(url, {"seed": 2}, content_type="application/json").status_code == 400
    do_open_study(actor=curator, study=draft)
    assert api.post(url, {"n_per_origin": 4, "seed": 2}, content_type="application/json").status_code == 409
    client.defaults.pop("HTTP_AUTHORIZATION")
    physician = _token_client(client, make_user("physician"))
    assert physician.post(url, {"n_per_origin": 4, "seed": 2}, content_type="application/json").status_code == 403


def test_the_rater_api_answers_404_for_a_study_not_open_to_the_physician(client, make_user, study):
    """The rater calls read the study themselves under their locks (api.rater_call): a study that does not exist, that
    does not list the physician, or that is not open is a 404 for next, submit and skip alike, as before."""
    listed, unlisted = make_user("physician"), make_user("physician")
    api = _token_client(client, listed)
    token = api.get(f"/api/review/studies/{study.pk}/next/").json()["token"]
    study.physicians.add(listed)  # the study now has a rater list, without `unlisted`
    calls = (("next", None), ("submit", {"token": token, "answers": ANSWERS}), ("skip", {"token": token,
                                                                                        "reason": "unreadable"}))

    def answers(user, study_id: int) -> list[tuple[int, str]]:
        client.defaults.pop("HTTP_AUTHORIZATION", None)
        api = _token_client(client, user)
        result = []
        for name, payload in calls:
            url = f"/api/review/studies/{study_id}/{name}/"
            response = api.get(url) if payload is None else api.post(url, payload, content_type="application/json")
            result.append((response.status_code, response.json()["detail"]))
        return result

    assert answers(unlisted, study.pk) == [(404, f"No open study {study.pk} for you to rate.")] * 3
    assert answers(listed, study.pk + 1000) == [(404, f"No open study {study.pk + 1000} for you to rate.")] * 3
    assert not Assignment.objects.filter(physician=unlisted).exists()
    do_close_study(actor=study.curator, study=study)
    closed = answers(listed, study.pk)
    assert [status for status, _detail in closed] == [404] * 3
    assert "not open" in closed[0][1] and "closed" in closed[1][1] and "closed" in closed[2][1]
    assert not Rating.objects.filter(assignment__physician=listed).exists()
