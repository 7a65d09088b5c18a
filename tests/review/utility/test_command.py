"""manage.py evaluate_utility: real notes by split, a release or approved notes, an evaluation file or split."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from review.releases.services import do_create_release
from review.utility.evaluation import REAL_ONLY
from tests.generation.factories import NoteFactory
from tests.review.conftest import synthetic_make
from tests.review.releases.factories import approve


@pytest.fixture
def stored(db, notes_by_role, tmp_path):
    """The fixture's real training notes stored as split train, its evaluation notes as split dev and as a file."""
    for text, code in notes_by_role["real"]:
        NoteFactory(text=text, icd_code=code, split="train")
    for text, code in notes_by_role["evaluation"]:
        NoteFactory(text=text, icd_code=code, split="dev")
    path = tmp_path / "dev.jsonl"
    path.write_text("".join(json.dumps({"idx": f"d{i}", "symptoms": text, "code": code}, ensure_ascii=False) + "\n"
                            for i, (text, code) in enumerate(notes_by_role["evaluation"])), encoding="utf-8")
    return path


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("evaluate_utility", *args, "--bootstrap", "200", stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_without_a_release_it_evaluates_real_notes_only_and_writes_json(stored, tmp_path):
    target = tmp_path / "out.json"
    out, _err = run("--real-split", "train", "--eval-file", str(stored), "--grid", "quick", "--seeds", "1",
                    "--json", str(target))
    written = json.loads(target.read_text(encoding="utf-8"))
    assert written["inputs"]["synthetic"] is None and written["inputs"]["real"]["split"] == "train"
    assert written["inputs"]["evaluation"]["file"] == "dev.jsonl" and written["inputs"]["evaluation"]["notes"] == 20
    assert [cell["key"] for cell in written["cells"]] == [REAL_ONLY]
    assert "accuracy %" in out and "real 100%" in out and f"written: {target}" in out


def test_a_release_is_evaluated_against_an_evaluation_split(stored, notes_by_role, make_user, tmp_path):
    curator = make_user("curator")
    synthetic = [synthetic_make(text, code) for text, code in notes_by_role["synthetic"]]
    approve(curator, *synthetic)
    release = do_create_release(actor=curator, name="medsyn-ru", filters={})
    target = tmp_path / "out.json"
    out, _err = run("--real-split", "train", "--release", "medsyn-ru:1", "--eval-split", "dev", "--grid", "quick",
                   "--seeds", "2", "--classifier", "tfidf-svm", "--held-out-codes", "g43", "--json", str(target))
    written = json.loads(target.read_text(encoding="utf-8"))
    inputs = written["inputs"]
    assert (inputs["synthetic"]["release"], inputs["synthetic"]["version"]) == ("medsyn-ru", 1)
    assert inputs["synthetic"]["content_sha256"] == release.content_sha256 and inputs["synthetic"]["notes"] == 22
    assert inputs["evaluation"]["split"] == "dev" and inputs["classifier"]["name"] == "tfidf-svm"
    assert inputs["held_out_codes"] == ["G43"] and inputs["seeds"] == [0, 1]
    g43 = next(row for row in written["per_code"] if row["code"] == "G43")
    assert g43["cells"]["real=1 synthetic=1"]["accuracy"] > g43["cells"][REAL_ONLY]["accuracy"]
    assert "synthetic only" in out and "upsampling" in out


def test_an_evaluation_set_inside_the_training_notes_is_refused(stored):
    with pytest.raises(CommandError, match="33 of 33 evaluation notes"):
        run("--real-split", "train", "--eval-split", "train", "--grid", "quick", "--seeds", "1")


def test_a_bad_evaluation_file_reports_its_lines(stored, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"idx": "a", "symptoms": "Кашель.", "code": "J06"}\n{"idx": "b", "symptoms": ""}\n',
                    encoding="utf-8")
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="1 problem"):
        call_command("evaluate_utility", "--real-split", "train", "--eval-file", str(path), stdout=out, stderr=err)
    assert "bad.jsonl: line 2: missing or empty field(s): symptoms, code" in err.getvalue()
