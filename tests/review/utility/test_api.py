"""The utility API under /api/utility/: researchers and admins only, an evaluation started (201) or refused by field
(400), its status and result (404 before it is done), cancel (409 once finished), evaluation sets uploaded as
multipart with every bad line in a 400, and the documented schema."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from drf_spectacular.generators import SchemaGenerator

from medsyn_site.core.models import JobStatus
from review.utility.jobs import utility_evaluation_run
from review.utility.models import EvaluationSet, UtilityEvaluation
from tests.review.utility.conftest import rumedtop3_lines

EVALUATIONS = "/api/utility/evaluations/"
SETS = "/api/utility/sets/"
QUICK = {"grid": "quick", "seeds": 1, "bootstrap": 100, "classifier": "tfidf-svm"}


@pytest.fixture
def researcher(client, make_user):
    client.force_login(make_user("researcher"))
    return client


def post(client, url: str, body: dict | None = None):
    return client.post(url, body or {}, content_type="application/json")


@pytest.mark.parametrize("role, status", [(None, 401), ("physician", 403), ("curator", 403), ("researcher", 200),
                                          ("admin", 200)])
def test_the_api_is_for_researchers_and_admins(client, make_user, stored_splits, role, status):
    if role:
        client.force_login(make_user(role))
    assert client.get(EVALUATIONS).status_code == status
    assert client.get(SETS).status_code == status
    answer = post(client, EVALUATIONS, {"real_split": "train", "evaluation_split": "dev", **QUICK})
    assert answer.status_code == (201 if status == 200 else status)
    assert UtilityEvaluation.objects.exists() == (status == 200)


def test_an_evaluation_is_started_read_and_its_result_served_once_done(researcher, stored_splits, release):
    answer = post(researcher, EVALUATIONS, {"real_split": "train", "evaluation_split": "dev", "synthetic": "release",
                                            "release": release.pk, "held_out_codes": ["g43"], **QUICK})
    assert answer.status_code == 201, answer.json()
    created = answer.json()
    assert created["status"] == "queued" and created["held_out_codes"] == ["G43"] and created["result_url"] is None
    assert created["release"] == {"id": release.pk, "name": "medsyn-ru", "version": 1,
                                  "content_sha256": release.content_sha256}
    assert created["command"].startswith("manage.py evaluate_utility --real-split train --release medsyn-ru:1")
    url = f"{EVALUATIONS}{created['id']}/"
    assert researcher.get(f"{url}result/").status_code == 404
    utility_evaluation_run(created["id"])
    status = researcher.get(url).json()
    assert status["status"] == "done" and status["progress_done"] == status["progress_total"] > 0
    assert status["overlap"]["refused"] is False and status["result_url"] == f"{url}result/"
    result = researcher.get(status["result_url"]).json()
    assert result == UtilityEvaluation.objects.get(pk=created["id"]).result
    assert result["inputs"]["synthetic"]["content_sha256"] == release.content_sha256
    assert [item["id"] for item in researcher.get(EVALUATIONS).json()] == [created["id"]]
    assert post(researcher, f"{url}cancel/").status_code == 409


def test_a_refused_request_is_a_400_by_field(researcher, stored_splits):
    answer = post(researcher, EVALUATIONS, {"real_split": "train", "evaluation_split": "train", "seeds": "٣",
                                            "approved_filters": {"nope": 1}, "synthetic": "approved"})
    assert answer.status_code == 400 and set(answer.json()) == {"seeds"}  # the types first
    answer = post(researcher, EVALUATIONS, {"real_split": "train", "evaluation_split": "train",
                                            "approved_filters": {"nope": 1}, "synthetic": "approved",
                                            "grid": "huge", "bootstrap": 5})
    assert answer.status_code == 400
    assert {"evaluation_split", "approved_filters", "grid", "bootstrap"} <= set(answer.json())
    assert not UtilityEvaluation.objects.exists()


def test_cancel_stops_an_evaluation_before_its_worker_takes_it(researcher, stored_splits):
    created = post(researcher, EVALUATIONS, {"real_split": "train", "evaluation_split": "dev", **QUICK}).json()
    answer = post(researcher, f"{EVALUATIONS}{created['id']}/cancel/")
    assert answer.status_code == 200 and answer.json()["status"] == JobStatus.CANCELLED


def test_evaluation_sets_are_uploaded_as_multipart(researcher, notes_by_role):
    good = SimpleUploadedFile("dev.jsonl", rumedtop3_lines(notes_by_role["evaluation"]).encode())
    answer = researcher.post(SETS, {"name": "dev", "file": good})
    assert answer.status_code == 201, answer.json()
    stored = answer.json()
    assert (stored["name"], stored["original_name"], stored["note_count"], stored["code_count"]) == (
        "dev", "dev.jsonl", 20, 5)
    assert researcher.get(f"{SETS}{stored['id']}/").json()["sha256"] == EvaluationSet.objects.get().sha256
    bad = SimpleUploadedFile("bad.jsonl", b'{"idx": 1, "symptoms": "", "code": "J06"}\n{"idx": 2, "code": "X"}\n')
    answer = researcher.post(SETS, {"name": "bad", "file": bad})
    assert answer.status_code == 400
    assert [problem["line"] for problem in answer.json()["problems"]] == [1, 2]
    assert "bad.jsonl" in answer.json()["detail"] and EvaluationSet.objects.count() == 1
    assert researcher.post(SETS, {"name": "dev", "file": SimpleUploadedFile("x.jsonl", b"")}).status_code == 400


def test_the_schema_documents_the_utility_api(db):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    for path in ("/api/utility/evaluations/", "/api/utility/evaluations/{id}/",
                 "/api/utility/evaluations/{id}/result/", "/api/utility/evaluations/{id}/cancel/",
                 "/api/utility/sets/", "/api/utility/sets/{id}/"):
        assert path in paths, path
    create = paths["/api/utility/evaluations/"]["post"]
    assert {"201", "400", "401", "403", "409"} <= set(create["responses"])
    assert "multipart/form-data" in paths["/api/utility/sets/"]["post"]["requestBody"]["content"]
