"""Note imports (all or nothing, idempotent) and prompt template versions."""

from __future__ import annotations

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from generation import jobs
from generation.backends.base import GenerationResult
from generation.checks import note_check
from generation.jobs import PlanRequest, do_create_job, job_execute
from generation.models import ModelConfig, Note, NoteVersion, PromptTemplate
from generation.prompts import DEFAULT_TEMPLATES
from generation.selectors import prompt_template_current, prompt_template_versions
from generation.services import (
    medsyn_csv_import,
    note_content_hash,
    note_text_revise,
    prompt_template_revise,
    prompt_templates_ensure,
    real_notes_import,
)
from medsyn_site.core.errors import InputError
from tests.generation.factories import NoteFactory

pytestmark = pytest.mark.django_db


def test_real_notes_import_stores_each_note_with_code_category_and_split(rumedtop3_file):
    counts = real_notes_import(path=rumedtop3_file, split="train")

    assert (counts.created, counts.skipped) == (5, 0)
    note = Note.objects.get(metadata__idx="t0000002")
    assert (note.origin, note.icd_code, note.icd_category, note.split) == ("real", "M54", "M54", "train")
    assert (note.language, note.source_dataset) == ("ru", "RuMedTop3")
    assert note.metadata == {"idx": "t0000002", "file": "rumedtop3_sample.jsonl", "line": 2}
    assert note.content_hash == note_content_hash(origin="real", icd_code="M54", text=note.text)


def test_reimporting_the_same_file_writes_nothing(rumedtop3_file):
    real_notes_import(path=rumedtop3_file, split="train")
    counts = real_notes_import(path=rumedtop3_file, split="train")

    assert (counts.created, counts.skipped) == (0, 5)
    assert Note.objects.count() == 5


def test_a_malformed_line_is_reported_by_number_and_nothing_is_written(tmp_path, rumedtop3_file):
    lines = rumedtop3_file.read_text(encoding="utf-8").splitlines()
    lines[2] = '{"idx": "bad", "symptoms": "кашель", '  # line 3: broken JSON
    lines.append(json.dumps({"idx": "x", "symptoms": "боль", "code": "not-a-code"}))  # line 7
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")

    with pytest.raises(InputError) as caught:
        real_notes_import(path=broken, split="train")

    assert [line for line, _ in caught.value.problems] == [3, 7]
    assert "not an ICD-10 code" in caught.value.problems[1][1]
    assert Note.objects.count() == 0


def test_content_hash_ignores_whitespace_but_not_origin_or_code():
    text = "Кашель,  слабость.\n"
    same = note_content_hash(origin="real", icd_code="j20", text=" Кашель, слабость.")
    assert note_content_hash(origin="real", icd_code="J20", text=text) == same
    assert note_content_hash(origin="synthetic", icd_code="J20", text=text) != same
    assert note_content_hash(origin="real", icd_code="J21", text=text) != same


def test_import_command_reports_counts_then_skips_on_rerun(rumedtop3_file):
    out = StringIO()
    call_command("import_real_notes", "--split", "dev", "--file", str(rumedtop3_file), stdout=out, stderr=StringIO())
    call_command("import_real_notes", "--split", "dev", "--file", str(rumedtop3_file), stdout=out, stderr=StringIO())

    assert "5 note(s) created, 0 skipped" in out.getvalue()
    assert "0 note(s) created, 5 skipped" in out.getvalue()
    assert set(Note.objects.values_list("split", flat=True)) == {"dev"}


def test_import_command_lists_problems_and_fails(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"idx": "a", "symptoms": "кашель", "code": "J20"}\n{"idx": "b", "code": "J20"}\n',
                   encoding="utf-8")
    err = StringIO()

    with pytest.raises(CommandError, match="1 problem"):
        call_command("import_real_notes", "--split", "train", "--file", str(bad), stdout=StringIO(), stderr=err)

    assert "line 2: missing or empty field(s): symptoms" in err.getvalue()
    assert Note.objects.count() == 0


def test_medsyn_csv_import_keeps_provenance_as_synthetic_notes(medsyn_csv_file):
    out = StringIO()
    call_command("import_medsyn_csv", "--file", str(medsyn_csv_file), stdout=out, stderr=StringIO())

    assert "3 note(s) created" in out.getvalue()
    note = Note.objects.get(metadata__idx="0")
    assert (note.origin, note.icd_code, note.icd_category, note.source_dataset) == ("synthetic", "J20.9", "J20",
                                                                                    "MedSyn")
    assert note.text.startswith("Пациент жалуется на сухой кашель,\nповышение")
    assert note.metadata["generation_model"] == "gpt-4"
    assert note.metadata["example"] is True
    assert note.metadata["example_source"] == "RuMedPrime"
    assert note.metadata["symptoms_recall"] == 0.81
    assert Note.objects.get(metadata__idx="1").metadata["symptoms_recall"] is None
    assert Note.objects.get(metadata__idx="2").metadata["line"] == 5  # the multi-line record spans lines 2-3
    assert medsyn_csv_import(path=medsyn_csv_file).created == 0


def test_medsyn_csv_with_a_missing_column_is_refused(tmp_path, medsyn_csv_file):
    header, *rest = medsyn_csv_file.read_text(encoding="utf-8").split("\n")
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join([header.replace(",response,", ",answer,"), *rest]), encoding="utf-8")

    with pytest.raises(InputError, match="line 1: missing column"):
        medsyn_csv_import(path=broken)


def _problems(call) -> list[tuple[int, str]]:
    with pytest.raises(InputError) as caught:
        call()
    assert Note.objects.count() == 0  # all or nothing
    return caught.value.problems


@pytest.mark.parametrize(("encoding", "looks_like"), [("cp1251", "Windows-1251 (Cyrillic)"),
                                                      ("utf-16", "UTF-16")])
def test_a_notes_file_not_in_utf8_is_refused_saying_what_it_looks_like(tmp_path, rumedtop3_file, medsyn_csv_file,
                                                                        encoding, looks_like):
    for source, importer in ((rumedtop3_file, lambda path: real_notes_import(path=path, split="train")),
                             (medsyn_csv_file, lambda path: medsyn_csv_import(path=path))):
        path = tmp_path / source.name
        path.write_bytes(source.read_text(encoding="utf-8").encode(encoding))
        problems = _problems(lambda path=path, importer=importer: importer(path))
        assert problems[0][0] == 0 and f"not UTF-8 text: it looks like {looks_like}" in problems[0][1], problems


def test_a_notes_file_with_a_byte_order_mark_imports_as_without(tmp_path, rumedtop3_file, medsyn_csv_file):
    jsonl, csv = tmp_path / "bom.jsonl", tmp_path / "bom.csv"
    jsonl.write_bytes(b"\xef\xbb\xbf" + rumedtop3_file.read_bytes())
    csv.write_bytes(b"\xef\xbb\xbf" + medsyn_csv_file.read_bytes())
    assert real_notes_import(path=jsonl, split="train").created == 5
    assert medsyn_csv_import(path=csv).created == 3
    assert Note.objects.get(metadata__idx="0").metadata["line"] == 2


def test_a_medsyn_csv_row_with_a_quote_left_open_or_too_few_fields_is_refused_with_its_line(tmp_path,
                                                                                             medsyn_csv_file):
    """A quote left open swallowed the rest of its row: 8 of 12 fields, once imported as a note with no symptoms."""
    header, *rows = medsyn_csv_file.read_text(encoding="utf-8").rstrip("\n").split("\n")
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join([header, *rows,
                                  '7,J06,gpt-4,"Представь, что ты врач,symptoms,True,RuMedTop3,Кашель и насморк.',
                                  ]) + "\n", encoding="utf-8")
    assert [line for line, _ in _problems(lambda: medsyn_csv_import(path=broken))] == [6]
    short = tmp_path / "short.csv"
    short.write_text("\n".join([header, *rows, "8,J06,gpt-4,prompt,symptoms,True,RuMedTop3,Кашель и насморк."])
                     + "\n", encoding="utf-8")
    [(line, message)] = _problems(lambda: medsyn_csv_import(path=short))
    assert line == 6 and "expected 12 fields (as the header), got 8" in message


def test_a_rumedtop3_line_with_an_escaped_nul_is_refused_with_its_line(tmp_path, rumedtop3_file):
    """JSON may escape a NUL ("\\u0000") that PostgreSQL text cannot hold: a problem of its line, not a failed write."""
    path = tmp_path / "nul.jsonl"
    path.write_text(rumedtop3_file.read_text(encoding="utf-8")
                    + json.dumps({"idx": "n", "symptoms": "кашель\x00", "code": "J06"}) + "\n", encoding="utf-8")
    [(line, message)] = _problems(lambda: real_notes_import(path=path, split="train"))
    assert line == 7 and "a control character in the field(s): symptoms" in message  # the sample has a blank line


def test_default_templates_are_seeded_once():
    assert PromptTemplate.objects.count() == len(DEFAULT_TEMPLATES)  # by the data migration
    assert prompt_templates_ensure() == 0
    assert PromptTemplate.objects.count() == len(DEFAULT_TEMPLATES)
    assert {(t.variant, t.language) for t in PromptTemplate.objects.all()} == {
        (variant, language) for variant in ("symptoms_example", "symptoms", "code") for language in ("ru", "en")}


def test_revising_a_template_adds_a_version_and_keeps_the_old_one(make_user):
    original = prompt_template_current(variant="symptoms", language="ru")
    author = make_user("admin")

    revised = prompt_template_revise(template=original, system_text="Пиши кратко.",
                                     user_text="Пациент — {sex}, {age}; жалобы: {symptoms}.", author=author)

    original.refresh_from_db()
    assert (revised.version, revised.is_current, revised.created_by) == (2, True, author)
    assert (original.version, original.is_current, original.system_text.startswith("Напиши")) == (1, False, True)
    assert prompt_template_current(variant="symptoms", language="ru") == revised
    assert [t.version for t in prompt_template_versions(name=original.name)] == [2, 1]


def test_revising_with_an_unknown_placeholder_is_refused():
    original = prompt_template_current(variant="code", language="en")
    with pytest.raises(ValueError, match="unknown placeholder"):
        prompt_template_revise(template=original, system_text="", user_text="A {patient_name} aged {age}.")
    assert prompt_template_versions(name=original.name).count() == 1


def test_model_config_requires_what_its_backend_needs():

    with pytest.raises(ValidationError, match="API model name"):
        ModelConfig(name="api", backend="openai").full_clean()
    ModelConfig(name="local", backend="local", model_path="tiny").full_clean()


def test_missing_file_is_a_command_error(tmp_path: Path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_medsyn_csv", "--file", str(tmp_path / "none.csv"))


def test_defaults_command_is_idempotent_and_the_default_model_loads_from_the_cache(settings):
    from generation.backends.local_backend import LoadKey

    out = StringIO()
    call_command("generation_defaults", stdout=out)
    call_command("generation_defaults", stdout=out)

    assert ModelConfig.objects.count() == 3  # SmolLM2 for English, Gemma 3 270M for Russian, template filling
    config = ModelConfig.objects.get(name=settings.DEFAULT_MODEL_NAME)
    assert (config.backend, config.prompt_format) == ("local", "chat")
    assert LoadKey.from_config(config).model_path == str(settings.DEFAULT_MODEL_DIR)
    russian = ModelConfig.objects.get(name=settings.DEFAULT_MODEL_RU_NAME)
    assert (russian.backend, russian.prompt_format, russian.writes("ru")) == ("local", "completion", True)
    assert LoadKey.from_config(russian).model_path == str(settings.DEFAULT_MODEL_RU_DIR)
    assert "0 prompt template(s) created" in out.getvalue()


def test_editing_a_template_in_the_admin_saves_a_new_version(client, make_user):
    original = prompt_template_current(variant="code", language="ru")
    client.force_login(make_user("admin"))

    response = client.post(f"/admin/generation/prompttemplate/{original.pk}/change/", {
        "system_text": original.system_text, "user_text": "Пациент — {sex}, {age}, диагноз «{disease}».",
    })

    assert response.status_code == 302
    versions = list(prompt_template_versions(name=original.name))
    assert [(t.version, t.is_current) for t in versions] == [(2, True), (1, False)]
    assert versions[1].user_text == original.user_text
    assert versions[0].user_text == "Пациент — {sex}, {age}, диагноз «{disease}»."


class _OneTextBackend:
    """A backend that answers every prompt with the same text."""

    def __init__(self, text: str) -> None:
        self.text = text

    def generate(self, requests, watch=None):
        results = [GenerationResult(key=r.key, text=self.text, prompt_tokens=1, completion_tokens=1, latency_s=0.0)
                   for r in requests]
        for result in results if watch is not None else ():
            watch.result(result)
        return results


REVISE_NOTE = ("Пациент жалуется на сильный кашель, насморк и боль в горле, лихорадку до тридцати девяти градусов, "
               "слабость и потливость в течение недели, ухудшение по вечерам.")


def _generated_note(monkeypatch, *, variant: str = "symptoms_example", checks: dict | None = None) -> Note:
    config = ModelConfig.objects.create(name=f"fake-{variant}", backend=ModelConfig.Backend.OPENAI,
                                        api_model="gpt-test", base_url="http://127.0.0.1:9/v1")
    monkeypatch.setattr(jobs, "backend_for", lambda config: _OneTextBackend(REVISE_NOTE))
    job = do_create_job(request=PlanRequest(categories=["J06"], budget=1, allocation="uniform", variant=variant,
                                            checks=checks or {}), model_config=config, actor=None,
                        enqueue=False)
    job_execute(job.pk)
    return job.items.get().note


def test_revising_a_note_keeps_the_old_version_and_rechecks_with_the_jobs_thresholds(
        tiny_graph, real_notes, monkeypatch, make_user):
    prompt_templates_ensure()
    note = _generated_note(monkeypatch, checks={"words_max": 30})
    generated_checks = note.metadata["checks"]
    assert generated_checks["passed"] and note.metadata["check_thresholds"]["words_max"] == 30
    curator = make_user("curator")
    longer = REVISE_NOTE + "\nКонтакт с больными отрицает, аллергии нет, хронических заболеваний не отмечает."
    assert note_check(longer, symptoms=note.metadata["symptoms"]).passed  # the default thresholds pass it

    revised = note_text_revise(note=note, text=longer.replace("\n", "\r\n") + "\r\n", actor=curator,
                               reason="Дополнен")

    revised.refresh_from_db()
    assert (revised.version, revised.text) == (2, longer)
    assert revised.content_hash == note_content_hash(origin="synthetic", icd_code=revised.icd_code, text=longer)
    assert revised.metadata["checks"]["reasons"] == ["too long: 34 words (maximum 30)"]
    assert revised.metadata["checks"]["scores"]["symptom_recall"] == 1.0
    kept = NoteVersion.objects.get(note=note)
    assert (kept.version, kept.text, kept.edited_by, kept.edit_reason) == (1, REVISE_NOTE, curator, "Дополнен")
    assert kept.checks == generated_checks


def test_revising_checks_only_the_prompts_inputs_its_wording_and_the_real_notes(
        tiny_graph, real_notes, monkeypatch, make_user):
    prompt_templates_ensure()
    note = _generated_note(monkeypatch, variant="symptoms")
    curator = make_user("curator")
    # A note kept from before prompt_inputs were recorded carried the plan's example although its prompt had none.
    example = "Пациентка жалуется на головную боль и тошноту по утрам, слабость, снижение аппетита, плохой сон."
    Note.objects.filter(pk=note.pk).update(metadata={**note.metadata, "example_text": example})
    note.refresh_from_db()

    copied = note_text_revise(note=note, text=example + " Болеет неделю, лечилась травами.", actor=curator)
    assert copied.metadata["prompt_inputs"] == ["symptoms"]
    assert "example_precision" not in copied.metadata["checks"]["scores"]
    assert not any("example" in reason for reason in copied.metadata["checks"]["reasons"])

    echo = "Напиши жалобы и анамнез пациента для медицинской карты. " + REVISE_NOTE
    echoing = note_text_revise(note=note, text=echo, actor=curator)
    assert any(reason.startswith("prompt echo") for reason in echoing.metadata["checks"]["reasons"])

    real = real_notes[0]
    memorised = note_text_revise(note=note, text=real.text, actor=curator)
    assert memorised.metadata["checks"]["scores"]["closest_real_note"] == real.pk
    assert any(reason.startswith(f"memorised real note {real.pk}") for reason in memorised.metadata["checks"][
        "reasons"])
    assert memorised.version == 4 and NoteVersion.objects.filter(note=note).count() == 3


def test_revising_refuses_an_empty_unchanged_or_duplicate_text(tiny_graph, real_notes, monkeypatch, make_user):
    prompt_templates_ensure()
    note = _generated_note(monkeypatch)
    curator = make_user("curator")
    with pytest.raises(ValidationError, match="empty"):
        note_text_revise(note=note, text=" \r\n ", actor=curator)
    with pytest.raises(ValidationError, match="unchanged"):
        note_text_revise(note=note, text=f"  {note.text}\r\n", actor=curator)
    other = NoteFactory(synthetic=True, text="Другой текст заметки.", icd_code=note.icd_code)
    with pytest.raises(ValidationError, match="already has exactly this text"):
        note_text_revise(note=note, text=other.text, actor=curator)
    note.refresh_from_db()
    assert (note.version, note.text) == (1, REVISE_NOTE) and not NoteVersion.objects.filter(note=note).exists()
