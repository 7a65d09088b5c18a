from __future__ import annotations

import pytest

from review.assessment.models import StudyItem
from review.assessment.services import do_build_study_pool, do_close_study, do_create_study, do_open_study

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

    client.defaults["HTTP_AUTHORIZATION"] = f"Token {Token.objects.create(user=user).key}"
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
                                                       ("researcher", 403, 200), ("admin", 200, 200)])
def test_api_permissions_per_role(client, make_user, study, role, rate, results):
    api = _token_client(client, make_user(role))
    assert api.get(f"/api/review/studies/{study.pk}/next/").status_code == rate
    assert api.get(f"/api/review/studies/{study.pk}/results/").status_code == results


def test_anonymous_gets_nothing(client, study):
    assert client.get(f"/api/review/studies/{study.pk}/next/").status_code in (401, 403)
    assert client.get(f"/api/review/studies/{study.pk}/results/").status_code in (401, 403)
