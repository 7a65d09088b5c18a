"""Instruction sets against the real PostgreSQL and FalkorDB: records in the three variants with the lexicon's and
accepted LLM symptoms, examples never the note itself nor an evaluation note, dedup, cap, validation by note, the
evaluation splits refused, immutable versions, the JSONL format exactly, the `datasets` folder, the command."""

from __future__ import annotations

import hashlib
import json
import zipfile
from collections import defaultdict
from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from generation.models import Note, PromptTemplate, SymptomProposal
from generation.prompts import alpaca_wrap
from generation.services import prompt_template_revise, prompt_templates_ensure
from generation.training.instruction_sets import (
    RECORD_KEYS,
    InstructionSetRequest,
    do_build_instruction_set,
    instruction_set_build_run,
    instruction_set_folder,
    instruction_set_preview,
    instruction_set_request_from,
    templates_default,
)
from generation.training.models import InstructionSet
from graph.sampling import sampling_data_load
from medsyn_site.core.models import JobStatus
from tests.generation.conftest import REAL_NOTE_TEXTS
from tests.generation.factories import NoteFactory

pytestmark = pytest.mark.django_db

J06_SYMPTOMS = "боль в горле; кашель; насморк"  # the tiny graph's J06 symptoms the J06 notes mention, in order
I10_SYMPTOMS = "головная боль; головокружение; шум в ушах"


@pytest.fixture(autouse=True)
def sets_dir(settings, tmp_path):
    prompt_templates_ensure()  # a transactional test elsewhere in the suite may have flushed them
    settings.INSTRUCTION_SETS_DIR = tmp_path / "instruction_sets"
    return settings.INSTRUCTION_SETS_DIR


def build(**values) -> InstructionSet:
    """A set built as its worker builds it: the request reserves the version, the job's function runs here."""
    request = InstructionSetRequest(**{"name": "rumed", "split": "train", **values})
    created = do_build_instruction_set(request=request, actor=None, enqueue=False)
    instruction_set_build_run(created.build.pk)
    return InstructionSet.objects.get(pk=created.pk)


def jsonl_records(instruction_set: InstructionSet) -> list[dict]:
    with open(instruction_set.file_path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def by_note(records: list[dict]) -> dict[int, dict[str, dict]]:
    grouped: dict[int, dict[str, dict]] = defaultdict(dict)
    for record in records:
        grouped[record["note_id"]][record["variant"]] = record
    return grouped


def test_every_note_in_each_variant_with_the_symptoms_it_mentions(tiny_graph, real_notes):
    built = build(validation_share=0)
    assert built.status == InstructionSet.Status.READY and built.error == ""
    records = jsonl_records(built)
    assert len(records) == 3 * len(real_notes) == built.n_train and built.n_validation == 0
    templates = {t.variant: t for t in templates_default()}
    grouped = by_note(records)
    for note in real_notes:
        variants = grouped[note.pk]
        assert list(variants) == ["symptoms_example", "symptoms", "code"]  # file order: by note, then variant
        symptoms = J06_SYMPTOMS if note.icd_category == "J06" else I10_SYMPTOMS
        for variant, record in variants.items():
            assert record["output"] == note.text and record["category"] == note.icd_category
            assert record["instruction"] == templates[variant].system_text  # the Russian defaults have no field
            assert record["part"] == "train"
        assert symptoms in variants["symptoms_example"]["input"] and symptoms in variants["symptoms"]["input"]
        assert variants["symptoms"]["input"].startswith("Пациент — ")
        assert f"({note.icd_code})" in variants["code"]["input"]
        assert symptoms not in variants["code"]["input"]
    assert built.counts["by_category"] == {"I10": {"train": 6, "validation": 0}, "J06": {"train": 9, "validation": 0}}
    assert built.counts["by_variant"]["code"] == {"train": 5, "validation": 0}
    # alpaca_wrap(instruction, input) is the prompt a local model gets at generation time
    assert alpaca_wrap(records[0]["instruction"], records[0]["input"]).startswith("### Задание: ")


def test_the_same_request_gives_the_same_records(tiny_graph, real_notes):
    first, second = build(seed=5), build(seed=5)
    assert first.sha256 == second.sha256 and (first.version, second.version) == (1, 2)
    assert build(seed=6).sha256 != first.sha256  # other patients and examples


def test_an_example_is_another_note_of_the_category_never_itself(tiny_graph, real_notes):
    records = jsonl_records(build())
    texts = {note.pk: note for note in real_notes}
    for record in records:
        if record["variant"] != "symptoms_example":
            continue
        note = texts[record["note_id"]]
        assert note.text not in record["input"]
        others = [n for n in real_notes if n.icd_category == note.icd_category and n.pk != note.pk]
        assert sum(other.text in record["input"] for other in others) == 1


def test_a_category_with_no_other_example_gets_the_neutral_template(tiny_graph, real_notes):
    alone = next(note for note in real_notes if note.icd_category == "I10")
    Note.objects.filter(icd_category="I10").exclude(pk=alone.pk).delete()
    built = build()
    record = by_note(jsonl_records(built))[alone.pk]["symptoms_example"]
    assert "Пациент обратился с жалобами." in record["input"] and alone.text not in record["input"]
    assert built.provenance["template_examples"] == 1


def test_examples_and_outputs_never_come_from_evaluation_notes(tiny_graph, real_notes):
    dev = [NoteFactory(text=REAL_NOTE_TEXTS["J06"][0].format(n=f"dev-{n}"), icd_code="J06", split="dev")
           for n in range(5)]
    records = jsonl_records(build())
    assert {r["note_id"] for r in records} == {note.pk for note in real_notes}
    assert not any(note.text in record["input"] for record in records for note in dev)


@pytest.mark.parametrize("split", ["dev", "test", "DEV"])
def test_evaluation_splits_are_refused(tiny_graph, real_notes, split):
    NoteFactory(text="Оценочная заметка о кашле и насморке.", split="dev")
    with pytest.raises(ValidationError) as refused:
        instruction_set_request_from({"name": "x", "split": split})
    assert "evaluation notes" in " ".join(refused.value.message_dict["split"])
    with pytest.raises(ValidationError, match="evaluation notes"):
        do_build_instruction_set(request=InstructionSetRequest(name="x", split=split), actor=None, enqueue=False)
    with pytest.raises(ValidationError, match="evaluation notes"):
        instruction_set_preview(InstructionSetRequest(split=split))
    assert not InstructionSet.objects.exists()


def test_a_split_without_real_notes_and_bad_parameters_are_refused(tiny_graph, real_notes):
    with pytest.raises(ValidationError) as refused:
        instruction_set_request_from({"name": "../etc", "split": "nosuch", "validation_share": 0.9,
                                      "cap_per_category": 0, "seed": 2**64, "templates": [10**9]})
    assert set(refused.value.message_dict) == {"name", "split", "validation_share", "cap_per_category", "seed",
                                               "templates"}
    with pytest.raises(ValidationError) as missing:
        instruction_set_request_from({"split": "train"})
    assert "name" in missing.value.message_dict
    assert instruction_set_request_from({"split": "train"}, require_name=False).name == ""


def test_identical_records_are_kept_once(tiny_graph, real_notes):
    twin = real_notes[0]  # J06: the same text under a full code of the same category
    again = NoteFactory(text=twin.text, icd_code="J06.9", split="train")
    built = build(validation_share=0)
    grouped = by_note(jsonl_records(built))
    assert list(grouped[again.pk]) == ["code"]  # its prompt names its own code; the other two are the twin's
    assert built.provenance["skipped"]["duplicate"] == 2
    records = jsonl_records(built)
    keys = [(r["instruction"], r["input"], r["output"]) for r in records]
    assert len(keys) == len(set(keys)) == 3 * len(real_notes) + 1


def test_records_are_capped_per_category(tiny_graph, real_notes):
    built = build(cap_per_category=4, validation_share=0)
    assert {c: parts["train"] for c, parts in built.counts["by_category"].items()} == {"I10": 4, "J06": 4}
    assert built.provenance["skipped"]["over_cap"] == 15 - 8
    per_note = [len(variants) for variants in by_note(jsonl_records(built)).values()]
    assert sorted(per_note) == [1, 1, 3, 3]  # notes in a seeded order, each whole until the cap cuts the last


def test_validation_holds_out_whole_notes_seeded(tiny_graph, real_notes):
    more = [NoteFactory(text=f"Жалобы на кашель и насморк, визит {n}, температура нормальная.", split="train")
            for n in range(15)]
    notes = len(real_notes) + len(more)
    built = build(validation_share=0.25, seed=3)
    records = jsonl_records(built)
    parts = defaultdict(set)
    for record in records:
        parts[record["note_id"]].add(record["part"])
    assert all(len(p) == 1 for p in parts.values())  # every record of a note in the same part
    held_out = {note for note, p in parts.items() if p == {"validation"}}
    assert len(held_out) == round(0.25 * notes) == built.provenance["validation_notes"]
    assert built.n_validation == sum(r["part"] == "validation" for r in records) > 0
    assert built.n_train + built.n_validation == len(records)
    again = build(validation_share=0.25, seed=3)
    assert {r["note_id"] for r in jsonl_records(again) if r["part"] == "validation"} == held_out
    other = build(validation_share=0.25, seed=4)
    assert {r["note_id"] for r in jsonl_records(other) if r["part"] == "validation"} != held_out


def test_a_note_without_symptoms_gets_only_the_code_variant(tiny_graph, real_notes):
    plain = NoteFactory(text="Плановый осмотр, жалоб нет.", icd_code="J06", split="train")
    built = build()
    assert list(by_note(jsonl_records(built))[plain.pk]) == ["code"]
    assert built.provenance["skipped"]["no_symptoms"] == 2


def test_accepted_llm_proposals_join_the_symptoms_of_their_notes(tiny_graph, real_notes):
    first, second = [note for note in real_notes if note.icd_category == "J06"][:2]
    SymptomProposal.objects.create(category="J06", symptom_key="заложенность носа", symptom="заложенность носа",
                                   note_ids=[first.pk], status=SymptomProposal.Status.ACCEPTED)
    SymptomProposal.objects.create(category="J06", symptom_key="слабость", symptom="слабость",
                                   note_ids=[first.pk, second.pk], status=SymptomProposal.Status.PROPOSED)
    built = build()
    grouped = by_note(jsonl_records(built))
    assert f"{J06_SYMPTOMS}; заложенность носа." in grouped[first.pk]["symptoms"]["input"]
    assert "заложенность носа" not in grouped[second.pk]["symptoms"]["input"]
    assert "слабость" not in grouped[first.pk]["symptoms"]["input"]  # only accepted proposals count
    assert built.provenance["symptoms_found"]["llm_accepted"] == 1


def test_a_chosen_template_version_renders_the_records(tiny_graph, real_notes):
    old = {t.variant: t for t in templates_default()}
    revised = prompt_template_revise(template=old["code"], system_text="Новая инструкция.",
                                     user_text="Диагноз: {disease} ({code}).")
    default = build(name="current")
    assert {r["instruction"] for r in jsonl_records(default) if r["variant"] == "code"} == {"Новая инструкция."}
    pinned = build(name="pinned", templates=tuple(t.pk for t in old.values()))
    code = [r for r in jsonl_records(pinned) if r["variant"] == "code"]
    assert {r["instruction"] for r in code} == {old["code"].system_text}
    assert {(t["name"], t["version"]) for t in pinned.provenance["templates"]} == {
        (t.name, t.version) for t in old.values()}
    assert (revised.version, default.provenance["templates"][2]["version"]) == (2, 2)
    with pytest.raises(ValidationError, match="exactly one prompt template for each variant"):
        instruction_set_request_from({"name": "x", "split": "train", "templates": [old["code"].pk, revised.pk]})


def test_building_again_makes_a_new_version_and_leaves_the_old_one(tiny_graph, real_notes, sets_dir):
    first = build(validation_share=0.2)
    first_bytes = Path(first.file_path).read_bytes()
    first_row = InstructionSet.objects.filter(pk=first.pk).values().get()
    NoteFactory(text="Жалобы на кашель и насморк третий день.", split="train")
    prompt_template_revise(template=templates_default()[1], system_text="Другая инструкция.",
                           user_text="Жалобы: {symptoms}.")
    second = build(validation_share=0.2)
    assert (first.version, second.version) == (1, 2) and first.file_path != second.file_path
    assert second.sha256 != first.sha256 and second.n_train + second.n_validation > first.n_train + first.n_validation
    assert InstructionSet.objects.filter(pk=first.pk).values().get() == first_row
    assert Path(first.file_path).read_bytes() == first_bytes
    assert first.source_notes.count() == len(real_notes) and second.source_notes.count() == len(real_notes) + 1
    assert (sets_dir / "rumed" / "v1" / "train.jsonl").is_file() and (sets_dir / "rumed" / "v2").is_dir()


def test_the_jsonl_is_exactly_the_alpaca_format(tiny_graph, real_notes):
    NoteFactory(text="Кашель\u2028ночью, насморк.", split="train")  # a line separator inside a note
    built = build(validation_share=0.3)
    raw = Path(built.file_path).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == built.sha256
    assert raw.endswith(b"\n") and b"\r" not in raw
    lines = raw.decode("utf-8").split("\n")[:-1]
    assert len(lines) == built.n_train + built.n_validation == len(raw.decode("utf-8").splitlines())
    assert "\\u2028" in raw.decode("utf-8")
    for line in lines:
        record = json.loads(line)
        assert list(record) == list(RECORD_KEYS) == ["instruction", "input", "output", "category", "variant",
                                                     "note_id", "part"]
        assert all(isinstance(record[key], str) for key in RECORD_KEYS if key != "note_id")
        assert isinstance(record["note_id"], int) and record["part"] in ("train", "validation")
        assert record["variant"] in PromptTemplate.Variant.values and record["category"] in ("J06", "I10")
    assert "Пациент" in raw.decode("utf-8")  # UTF-8, not \u escapes
    assert built.file_path == str(instruction_set_folder(built) / "train.jsonl")


def test_the_datasets_folder_and_zip_load_with_datasets(tiny_graph, real_notes, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets

    built = build(validation_share=0.4)
    folder = instruction_set_folder(built)
    loaded = datasets.load_dataset(str(folder / "datasets"), cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == {"train", "validation"}
    assert (loaded["train"].num_rows, loaded["validation"].num_rows) == (built.n_train, built.n_validation)
    assert list(loaded["train"].features) == list(RECORD_KEYS)
    records = jsonl_records(built)
    assert sorted(loaded["train"].to_list() + loaded["validation"].to_list(),
                  key=lambda r: (r["note_id"], r["variant"])) == sorted(records,
                                                                      key=lambda r: (r["note_id"], r["variant"]))
    with zipfile.ZipFile(folder / "datasets.zip") as archive:
        archive.extractall(tmp_path / "unzipped")
    again = datasets.load_dataset(str(tmp_path / "unzipped" / "datasets"), cache_dir=str(tmp_path / "cache2"))
    assert again["validation"].num_rows == built.n_validation
    card = (folder / "datasets" / "README.md").read_text(encoding="utf-8")
    assert "default-symptoms_example-ru v1" in card and "| J06 |" in card
    sums = (folder / "SHA256SUMS").read_text(encoding="utf-8")
    for line in sums.splitlines():
        digest, name = line.split("  ")
        assert hashlib.sha256((folder / name).read_bytes()).hexdigest() == digest
    assert f"{built.sha256}  train.jsonl" in sums


def test_the_preview_counts_what_the_build_writes(tiny_graph, real_notes):
    NoteFactory(text="Плановый осмотр, жалоб нет.", icd_code="I10", split="train")
    values = {"cap_per_category": 5, "validation_share": 0.2, "seed": 9}
    preview = instruction_set_preview(InstructionSetRequest(split="train", **values))
    built = build(**values)
    assert preview.counts == built.counts and preview.skipped == built.provenance["skipped"]
    assert (preview.n_train, preview.n_validation, preview.total) == (
        built.n_train, built.n_validation, len(jsonl_records(built)))
    assert not InstructionSet.objects.exclude(pk=built.pk).exists()  # the preview wrote nothing


def test_provenance_names_the_graph_version_split_notes_and_parameters(tiny_graph, real_notes):
    built = build(cap_per_category=100, validation_share=0.2, seed=11)
    provenance = built.provenance
    assert built.graph_version == provenance["graph_version"] == sampling_data_load(tiny_graph).version
    assert (provenance["split"], provenance["seed"], provenance["cap_per_category"]) == ("train", 11, 100)
    assert provenance["validation_share"] == 0.2 and provenance["source_notes"] == len(real_notes)
    assert provenance["request"]["templates"] == [t.pk for t in templates_default()]
    assert {f["path"] for f in provenance["files"]} >= {"train.jsonl", "datasets.zip", "datasets/README.md",
                                                       "datasets/data/train.parquet", "SHA256SUMS"}
    assert set(built.source_notes.values_list("pk", flat=True)) == {note.pk for note in real_notes}


def test_a_build_that_cannot_write_fails_with_the_reason(tiny_graph, real_notes, settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    settings.INSTRUCTION_SETS_DIR = blocker / "sets"
    created = do_build_instruction_set(request=InstructionSetRequest(name="broken", split="train"), actor=None,
                                       enqueue=False)
    with pytest.raises(OSError):
        instruction_set_build_run(created.build.pk)
    failed = InstructionSet.objects.select_related("build").get(pk=created.pk)
    assert failed.status == InstructionSet.Status.FAILED and "Error" in failed.error
    assert failed.build.status == JobStatus.FAILED and failed.build.error == failed.error
    assert not failed.source_notes.exists() and failed.sha256 == ""
    instruction_set_build_run(created.build.pk)  # a finished build is left alone
    assert InstructionSet.objects.get(pk=created.pk).status == InstructionSet.Status.FAILED


def test_the_command_previews_and_builds_with_a_progress_bar(tiny_graph, real_notes):
    out, err = StringIO(), StringIO()
    call_command("build_instruction_set", "--split", "train", "--preview", stdout=out, stderr=err)
    assert "15 records" in out.getvalue() and not InstructionSet.objects.exists()
    old = templates_default()
    call_command("build_instruction_set", "--name", "cli", "--split", "train", "--cap-per-category", "4",
                 "--validation-share", "0.2", "--seed", "17", "--templates", str(old[0].pk), old[1].name,
                 f"{old[2].name}@1", stdout=out, stderr=err)
    built = InstructionSet.objects.get(name="cli")
    assert built.status == InstructionSet.Status.READY and built.n_train + built.n_validation == 8
    assert f"cli v1: {built.n_train} train + {built.n_validation} validation records" in out.getvalue()
    with pytest.raises(CommandError, match="evaluation notes"):
        call_command("build_instruction_set", "--name", "cli", "--split", "dev", stdout=out, stderr=err)
    with pytest.raises(CommandError, match="no prompt template"):
        call_command("build_instruction_set", "--name", "cli", "--templates", "nosuch@3", stdout=out, stderr=err)
