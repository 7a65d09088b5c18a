"""Instruction sets through the API and the pages: permissions, preview equal to the build, the build queued as a
job and its set followed to ready, downloads, the evaluation splits refused with a 400, the documented schema."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile

import pytest
from django.urls import reverse
from drf_spectacular.generators import SchemaGenerator

from generation.services import prompt_templates_ensure
from generation.training.instruction_sets import instruction_set_build_run
from generation.training.models import InstructionSet
from medsyn_site.core.models import JobStatus
from tests.generation.factories import NoteFactory

pytestmark = pytest.mark.django_db

SETS = "/api/training/sets/"
PREVIEW = "/api/training/sets/preview/"


@pytest.fixture(autouse=True)
def sets_dir(settings, tmp_path):
    prompt_templates_ensure()
    settings.INSTRUCTION_SETS_DIR = tmp_path / "instruction_sets"
    return settings.INSTRUCTION_SETS_DIR


@pytest.fixture
def researcher(client, make_user):
    client.force_login(make_user("researcher"))
    return client


def _post(client, url: str, body: dict):
    return client.post(url, body, content_type="application/json")


def _run(set_id: int) -> InstructionSet:
    """What the default-queue worker does with the queued build."""
    instruction_set_build_run(InstructionSet.objects.get(pk=set_id).build.pk)
    return InstructionSet.objects.get(pk=set_id)


@pytest.mark.parametrize("role, status", [(None, 401), ("physician", 403), ("curator", 403), ("researcher", 200),
                                          ("admin", 200)])
def test_the_api_is_for_researchers_and_admins(client, make_user, tiny_graph, real_notes, role, status):
    if role:
        client.force_login(make_user(role))
    assert client.get(SETS).status_code == status
    assert _post(client, PREVIEW, {"split": "train"}).status_code == status
    answer = _post(client, SETS, {"name": "x", "split": "train"})
    assert answer.status_code == (202 if status == 200 else status)
    assert InstructionSet.objects.exists() == (status == 200)


@pytest.mark.parametrize("role, status", [("physician", 403), ("curator", 403), ("researcher", 200)])
def test_the_pages_are_for_researchers_and_admins(client, make_user, tiny_graph, real_notes, role, status):
    client.force_login(make_user(role))
    for url in (reverse("training:sets"), reverse("training:set_new")):
        assert client.get(url).status_code == status
    client.logout()
    answer = client.get(reverse("training:sets"))
    assert answer.status_code == 302 and "/accounts/login/" in answer["Location"]


def test_preview_then_build_then_download(researcher, tiny_graph, real_notes):
    body = {"split": "train", "cap_per_category": 5, "validation_share": 0.2, "seed": 3}
    preview = _post(researcher, PREVIEW, body)
    assert preview.status_code == 200
    counts = preview.json()
    assert counts["total"] == 10 and counts["skipped"]["over_cap"] == 5
    assert {row["key"] for row in counts["by_category"]} == {"I10", "J06"}
    assert not InstructionSet.objects.exists()

    created = _post(researcher, SETS, {**body, "name": "api-set"})
    assert created.status_code == 202
    queued = created.json()
    assert (queued["status"], queued["version"], queued["build"]["status"]) == ("building", 1, "queued")
    assert queued["downloads"] == {}
    built = _run(queued["id"])
    detail = researcher.get(f"{SETS}{built.pk}/").json()
    assert detail["status"] == "ready" and detail["build"]["finished"] and detail["build"]["percent"] == 100
    assert (detail["n_train"], detail["n_validation"]) == (counts["n_train"], counts["n_validation"])
    assert detail["counts"]["by_category"] == {row["key"]: {"train": row["train"], "validation": row["validation"]}
                                               for row in counts["by_category"]}
    assert detail["provenance"]["graph_version"] == counts["graph_version"]

    jsonl = researcher.get(detail["downloads"]["train.jsonl"])
    assert jsonl.status_code == 200 and "attachment" in jsonl["Content-Disposition"]
    raw = b"".join(jsonl.streaming_content)
    assert hashlib.sha256(raw).hexdigest() == detail["sha256"]
    assert len(raw.decode("utf-8").splitlines()) == counts["total"]
    archive = researcher.get(detail["downloads"]["datasets.zip"])
    names = zipfile.ZipFile(io.BytesIO(b"".join(archive.streaming_content))).namelist()
    assert set(names) == {"datasets/README.md", "datasets/data/train.parquet", "datasets/data/validation.parquet"}
    assert researcher.get(f"{SETS}{built.pk}/files/SHA256SUMS").status_code == 404
    assert researcher.get(f"{SETS}{built.pk}/files/..%2Fetc").status_code == 404
    assert [s["id"] for s in researcher.get(SETS).json()] == [built.pk]


def test_the_api_refuses_evaluation_splits_and_bad_input_with_a_400(researcher, tiny_graph, real_notes):
    NoteFactory(text="Оценочная заметка.", split="dev")
    refused = _post(researcher, SETS, {"name": "x", "split": "dev"})
    assert refused.status_code == 400 and "evaluation notes" in " ".join(refused.json()["split"])
    assert _post(researcher, PREVIEW, {"split": "test"}).status_code == 400
    assert _post(researcher, SETS, {"name": "x", "split": "train", "seed": "٣"}).json() == {
        "seed": ["A valid integer is required."]}
    bad = _post(researcher, SETS, {"name": "../x", "split": "train", "validation_share": 2, "templates": [999999]})
    assert bad.status_code == 400 and set(bad.json()) == {"name", "validation_share", "templates"}
    assert _post(researcher, SETS, {"split": "train"}).status_code == 400  # a name is required to build
    assert set(_post(researcher, PREVIEW, {"split": "train\x00"}).json()) == {"split"}
    assert set(_post(researcher, PREVIEW, {"split": "train", "templates": [2**70]}).json()) == {"templates"}
    assert not InstructionSet.objects.exists()
    assert researcher.get(f"{SETS}999999/").status_code == 404


def test_a_set_still_building_has_no_files(researcher, tiny_graph, real_notes):
    queued = _post(researcher, SETS, {"name": "wip", "split": "train"}).json()
    assert researcher.get(f"{SETS}{queued['id']}/files/train.jsonl").status_code == 404
    page = researcher.get(reverse("training:set_file", kwargs={"pk": queued["id"], "name": "train.jsonl"}))
    assert page.status_code == 404


def test_the_new_set_page_previews_with_htmx_and_builds(researcher, tiny_graph, real_notes):
    form = researcher.get(reverse("training:set_new"))
    assert form.status_code == 200
    html = form.content.decode()
    assert 'value="train" selected' in html and "default-code-ru v1 (current)" in html
    templates = {name: form.context["form"].fields[name].initial for name in
                 ("template_symptoms_example", "template_symptoms", "template_code")}
    data = {"split": "train", "validation_share": "0.2", "seed": "17", "cap_per_category": "", **templates}
    preview = researcher.post(reverse("training:set_new"), {**data, "action": "preview"}, HTTP_HX_REQUEST="true")
    assert preview.status_code == 200
    fragment = preview.content.decode()
    assert 'data-testid="set-preview-categories"' in fragment and "<html" not in fragment
    assert preview.context["plan"].total == 15

    refused = researcher.post(reverse("training:set_new"), {**data, "split": "dev", "action": "preview"},
                              HTTP_HX_REQUEST="true")
    assert "evaluation notes" in refused.content.decode()
    unnamed = researcher.post(reverse("training:set_new"), {**data, "action": "build"})
    assert unnamed.status_code == 400 and "A name is required" in unnamed.content.decode()

    built = researcher.post(reverse("training:set_new"), {**data, "name": "page-set", "action": "build"})
    created = InstructionSet.objects.get(name="page-set")
    assert built.status_code == 302 and built["Location"] == reverse("training:set_detail", kwargs={"pk": created.pk})
    page = researcher.get(built["Location"])
    assert 'hx-trigger="every 1s"' in page.content.decode() and created.status == "building"
    _run(created.pk)
    polled = researcher.get(built["Location"], HTTP_HX_REQUEST="true")
    assert polled.status_code == 286  # htmx stops polling: the build has finished
    body = polled.content.decode()
    assert "train.jsonl" in body and "datasets.zip" in body and 'data-testid="set-categories"' in body
    listing = researcher.get(reverse("training:sets")).content.decode()
    assert "page-set v1" in listing and "Ready" in listing


def test_a_failed_build_shows_its_reason(researcher, tiny_graph, real_notes, settings, tmp_path):
    (tmp_path / "blocker").write_text("a file")
    settings.INSTRUCTION_SETS_DIR = tmp_path / "blocker" / "sets"
    queued = _post(researcher, SETS, {"name": "broken", "split": "train"}).json()
    with pytest.raises(OSError):
        _run(queued["id"])
    detail = researcher.get(f"{SETS}{queued['id']}/").json()
    assert detail["status"] == "failed" and detail["build"]["status"] == JobStatus.FAILED and detail["error"]
    page = researcher.get(reverse("training:set_detail", kwargs={"pk": queued["id"]})).content.decode()
    assert 'data-testid="set-error"' in page and "hx-trigger" not in page


def test_the_api_is_documented_with_its_error_answers():
    schema = SchemaGenerator().get_schema(request=None, public=True)
    paths = schema["paths"]
    build = paths["/api/training/sets/"]["post"]["responses"]
    assert {"202", "400", "401", "403", "409", "429", "503"} <= set(build)
    assert {"200", "400", "409"} <= set(paths["/api/training/sets/preview/"]["post"]["responses"])
    assert {"200", "404"} <= set(paths["/api/training/sets/{id}/"]["get"]["responses"])
    assert {"200", "404"} <= set(paths["/api/training/sets/{id}/files/{name}"]["get"]["responses"])
    request = schema["components"]["schemas"]["InstructionSetCreate"]["properties"]
    assert {"name", "split", "templates", "cap_per_category", "validation_share", "seed"} <= set(request)
    assert "StatusEnum" in schema["components"]["schemas"]  # the jobs' status enum keeps its name
    assert json.dumps(schema)  # serialisable


@pytest.mark.worker
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_build_runs_on_the_default_worker(celery_workers, tiny_graph, real_notes, settings):
    """The request only queues the build; the default-queue worker (its own graph and variable directory, as in
    production) computes and writes the set."""
    import time
    from pathlib import Path

    from django.conf import settings as django_settings

    from generation.training.instruction_sets import InstructionSetRequest, do_build_instruction_set

    settings.INSTRUCTION_SETS_DIR = django_settings.VAR_DIR / "instruction_sets"  # where the worker writes
    created = do_build_instruction_set(request=InstructionSetRequest(name="on-worker", split="train",
                                                                     validation_share=0.2), actor=None)
    deadline = time.monotonic() + 90
    while (built := InstructionSet.objects.select_related("build").get(pk=created.pk)).status == "building":
        assert time.monotonic() < deadline, built.build.status
        time.sleep(0.2)
    assert built.status == "ready" and built.build.status == JobStatus.DONE
    assert built.build.worker.startswith("default@") and built.build.percent == 100
    raw = Path(built.file_path).read_bytes()
    assert Path(built.file_path).is_relative_to(settings.INSTRUCTION_SETS_DIR)
    assert hashlib.sha256(raw).hexdigest() == built.sha256
    assert len(raw.splitlines()) == built.n_train + built.n_validation > 0
