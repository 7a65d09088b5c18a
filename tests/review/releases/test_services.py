"""Releases: what gets in (approved, checked, unflagged or overridden; real notes only when asked, with a
licence), immutability, versions and diffs, the memorisation block, and the export read back in every format."""

from __future__ import annotations

import csv
import json
import threading
import time

import pyarrow.parquet as pq
import pytest
from django.db import Error as DatabaseError
from django.db import connection, transaction

from generation.models import ModelConfig, Note
from medsyn_site.core.models import AuditRecord
from review.curation.models import NoteCuration, ScanJob
from review.curation.scans import scan_run
from review.curation.services import do_edit_note, do_override_note_flag, do_transition_note
from review.releases import services
from review.releases.export import CSV_COLUMNS, folder_verify
from review.releases.models import Release, ReleaseExport, ReleaseNote
from review.releases.services import (
    ReleaseError,
    do_create_release,
    release_diff,
    release_export_run,
    release_folder,
    release_preview,
)
from tests.review.conftest import synthetic_make
from tests.review.curation.factories import NoteCurationFactory
from tests.review.releases.factories import approve


def _sql(statement: str, *params) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def test_release_takes_only_releasable_approved_notes(curation_pool, curator):
    synthetic = curation_pool["synthetic"]
    approve(curator, *synthetic[:3])
    approve(curator, synthetic[3], checked=False)
    NoteCurationFactory(note=synthetic[2], near_duplicate_of=synthetic[0], duplicate_jaccard=0.91)
    do_transition_note(actor=curator, note=synthetic[4], action="submit")  # pending: never released
    preview = release_preview(filters={})
    assert (preview.synthetic, preview.real) == (2, 0)
    assert sorted(preview.held_back.values()) == [1, 1]
    release = do_create_release(actor=curator, name="medsyn-ru", filters={}, description="Первый выпуск")
    assert (release.version, release.note_count, release.licence) == (1, 2, "mit")
    assert set(release.notes.values_list("note_id", flat=True)) == {synthetic[0].pk, synthetic[1].pk}
    assert not release.notes.filter(origin="real").exists()
    audit = AuditRecord.objects.get(action="create_release")
    assert audit.actor == curator and audit.extra["notes"] == 2 and len(audit.extra["held_back"]) == 2
    again = do_create_release(actor=curator, name="medsyn-ru", filters={"model": "smollm2"})
    assert (again.version, again.note_count) == (2, 1)
    with pytest.raises(ReleaseError, match="No note can be released"):
        do_create_release(actor=curator, name="medsyn-ru", filters={"code": "Z99"})


def test_real_notes_only_when_marked_with_their_licence(curation_pool, curator):
    approve(curator, curation_pool["synthetic"][0])
    with pytest.raises(ReleaseError, match="licence"):
        do_create_release(actor=curator, name="mixed", filters={}, include_real=True)
    release = do_create_release(actor=curator, name="mixed", filters={"code": "J06"}, include_real=True,
                                real_data_licence="Apache-2.0")
    rows = {row.origin: row for row in release.notes.all()}
    assert set(rows) == {"real", "synthetic"} and release.real_data_licence == "Apache-2.0"
    assert rows["real"].fields["prior"] == "real" and rows["real"].fields["generation_model"] == ""


def test_private_example_is_written_as_private_data(curation_pool, curator):
    synthetic = curation_pool["synthetic"]
    approve(curator, synthetic[0], synthetic[2])  # examples: RuMedTop3 (open) and ClinicPrivate
    release = do_create_release(actor=curator, name="privacy", filters={})
    fields = {row.note_id: row.fields for row in release.notes.all()}
    open_example, private = fields[synthetic[0].pk], fields[synthetic[2].pk]
    assert open_example["anamnesis"] == curation_pool["real"][0].text and open_example["example source"] == "RuMedTop3"
    assert private["anamnesis"] == "private_data" and private["example"] is True
    assert curation_pool["real"][2].text not in private["prompt"] and "private_data" in private["prompt"]


def _note_of_the_old_planner(text: str, code: str, variant: str, example: Note, **metadata) -> Note:
    """A note generated before the planner stopped sampling an example for every variant: its metadata names an
    example (text and note id) that its prompt never contained."""
    note = synthetic_make(text, code, variant=variant, example=example)
    note.metadata.update(prompt={"system": "Ты врач.", "user": "Симптомы: кашель; слабость. Напиши запись приёма."},
                         **metadata)
    note.save(update_fields=["metadata"])
    return note


def test_only_an_example_the_prompt_contained_is_exported(curation_pool, curator):
    """Bug 1: a "symptoms" or "code" note exported the example its plan row carried (and published that real note's
    text) although its prompt had no example."""
    real, synthetic = curation_pool["real"], curation_pool["synthetic"]
    symptoms_only = _note_of_the_old_planner("Кашель и слабость третий день.", "J06.9", "symptoms", real[0])
    code_only = _note_of_the_old_planner("Изжога после еды, тяжесть в эпигастрии.", "K21.9", "code", real[2])
    no_example_slot = _note_of_the_old_planner(  # a symptoms_example template without {example}: as recorded
        "Головная боль в висках, тошнота.", "G43.0", "symptoms_example", real[1], prompt_inputs=["symptoms"])
    approve(curator, symptoms_only, code_only, no_example_slot, synthetic[0], synthetic[2])
    release = do_create_release(actor=curator, name="prompt-inputs", filters={})
    fields = {row.note_id: row.fields for row in release.notes.all()}
    for note, prior in ((symptoms_only, "symptoms"), (code_only, "code"), (no_example_slot, "symptoms")):
        row = fields[note.pk]
        assert (row["example"], row["anamnesis"], row["example source"], row["prior"]) == (False, "", "", prior)
        assert row["anamnesis_precision"] is None
        assert not any(example.text in str(value) for example in real for value in row.values())
    with_example, private = fields[synthetic[0].pk], fields[synthetic[2].pk]  # symptoms_example notes
    assert (with_example["example"], with_example["anamnesis"], with_example["example source"]) == (
        True, real[0].text, "RuMedTop3")
    assert (private["example"], private["anamnesis"], private["example source"]) == (True, "private_data",
                                                                                     "ClinicPrivate")


def _lock_waiter_seen() -> bool:
    """Whether some PostgreSQL session waits for a lock (pg_locks is live, unlike pg_stat_activity in a transaction)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_locks WHERE NOT granted)")
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_concurrent_releases_of_one_name_get_the_next_versions(curation_pool, curator, monkeypatch):
    """Bug 4: both creations read the same latest version and one died on the unique (name, version).

    The first creation to write its snapshot waits, its transaction open, until the other one waits for a lock
    (the version lock once fixed; the unique index behind the uncommitted row before), so the two always overlap."""
    approve(curator, *curation_pool["synthetic"][:2])
    snapshot_write = services._snapshot_write
    first = threading.Lock()

    def overlapping_snapshot_write(*args, **kwargs):
        if first.acquire(blocking=False):
            for _ in range(3000):  # a bound, not a timing: the other creation gets there within milliseconds
                if _lock_waiter_seen():
                    break
                time.sleep(0.01)
        return snapshot_write(*args, **kwargs)

    monkeypatch.setattr(services, "_snapshot_write", overlapping_snapshot_write)
    barrier = threading.Barrier(2)
    versions: list[int] = []
    errors: list[BaseException] = []

    def create() -> None:
        try:
            barrier.wait()
            versions.append(do_create_release(actor=curator, name="race", filters={}).version)
        except BaseException as error:  # collected and re-raised in the main thread
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=create) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    assert sorted(versions) == [1, 2]
    assert sorted(Release.objects.filter(name="race").values_list("version", flat=True)) == [1, 2]


def test_a_release_is_immutable_and_versions_diff(curation_pool, curator, make_user):
    synthetic = curation_pool["synthetic"]
    approve(curator, *synthetic[:3])
    first = do_create_release(actor=curator, name="frozen", filters={})
    frozen_text = first.notes.get(note=synthetic[0]).text
    for attempt in (lambda: ReleaseNote.objects.filter(release=first).update(text="подмена"),
                    lambda: ReleaseNote.objects.filter(release=first).delete(),
                    lambda: Release.objects.filter(pk=first.pk).update(name="renamed"),
                    lambda: Release.objects.filter(pk=first.pk).update(note_count=99),
                    lambda: Release.objects.filter(pk=first.pk).update(created_by=make_user("curator")),
                    lambda: _sql("DELETE FROM review_release WHERE id = %s", first.pk)):
        with pytest.raises(DatabaseError, match="immutable"), transaction.atomic():
            attempt()
    ReleaseExport.objects.filter(release=first).update(progress_done=1)  # the export is a job of its own
    curator_gone = make_user("curator")
    gone = do_create_release(actor=curator_gone, name="frozen-by-a-former-curator", filters={})
    curator_gone.delete()  # created_by may still become NULL (on_delete=SET_NULL)
    assert Release.objects.get(pk=gone.pk).created_by is None

    do_transition_note(actor=curator, note=synthetic[0], action="reopen", reason="Исправить")
    do_edit_note(actor=curator, note=synthetic[0], text=synthetic[0].text + " Рекомендован контроль.", reason="")
    do_transition_note(actor=curator, note=synthetic[0], action="approve")
    NoteCurationFactory(note=Note.objects.get(pk=synthetic[0].pk), scanned=True)  # both scans read version 2
    do_transition_note(actor=curator, note=synthetic[1], action="reopen", reason="Снять")
    approve(curator, synthetic[3])
    second = do_create_release(actor=curator, name="frozen", filters={})
    assert first.notes.get(note=synthetic[0]).text == frozen_text  # later edits never change a release
    assert second.notes.get(note=synthetic[0]).text.endswith("Рекомендован контроль.")
    diff = release_diff(first, second)
    assert (diff.added, diff.removed, diff.changed, diff.unchanged) == (
        [synthetic[3].pk], [synthetic[1].pk], [synthetic[0].pk], 1)
    assert first.content_sha256 != second.content_sha256 and len(first.content_sha256) == 64


def test_injected_copy_of_a_real_note_is_flagged_and_blocked(curation_pool, curator):
    real = curation_pool["real"][1]
    copy = synthetic_make("Мужчина 58 лет. " + real.text + " Направлен к кардиологу.", "I20.8")
    honest = curation_pool["synthetic"][1]
    approve(curator, copy, honest, checked=False)
    scan_run(ScanJob.objects.create(kind="duplicates").pk)
    scan = ScanJob.objects.create(kind="memorisation")
    scan_run(scan.pk)
    scan.refresh_from_db()
    copied, honest_curation = NoteCuration.objects.get(note=copy), NoteCuration.objects.get(note=honest)
    assert (scan.status, scan.flagged, scan.progress_done, scan.progress_total) == ("done", 1, 7, 7)
    assert copied.memorised and copied.memorisation_real_note_id == real.pk
    assert copied.memorisation_ngram >= len(real.text.split()) - 1
    assert not honest_curation.memorised and honest_curation.memorisation_checked_version == honest.version
    preview = release_preview(filters={})
    assert preview.synthetic == 1 and list(preview.held_back.values()) == [1]
    blocked = do_create_release(actor=curator, name="privacy-check", filters={})
    assert list(blocked.notes.values_list("note_id", flat=True)) == [honest.pk]
    do_override_note_flag(actor=curator, note=copy, reason="Согласовано с владельцем данных")
    allowed = do_create_release(actor=curator, name="privacy-check", filters={})
    assert set(allowed.notes.values_list("note_id", flat=True)) == {honest.pk, copy.pk}
    scan_run(scan.pk)  # a redelivered, finished scan does nothing
    assert ScanJob.objects.get(pk=scan.pk).flagged == 1


def test_duplicates_scan_flags_the_later_copy(curation_pool, curator):
    long_text = ("Пациент 34 лет обратился с жалобами на кашель с небольшим количеством светлой мокроты, заложенность "
                 "носа, першение в горле и слабость. Болеет в течение трёх дней, заболевание связывает с "
                 "переохлаждением. Температура тела повышалась до 37,9, снижалась после приёма парацетамола. "
                 "Одышки и болей в грудной клетке не отмечает, аппетит сохранён, сон не нарушен.")
    first = synthetic_make(long_text, "J06.9")
    later = synthetic_make(long_text.replace("трёх дней", "четырёх дней"), "J06.9")
    scan = ScanJob.objects.create(kind="duplicates")
    scan_run(scan.pk)
    later_curation, first_curation = NoteCuration.objects.get(note=later), NoteCuration.objects.get(note=first)
    assert later_curation.near_duplicate_of_id == first.pk and later_curation.duplicate_jaccard >= 0.8
    assert first_curation.near_duplicate_of_id is None and ScanJob.objects.get(pk=scan.pk).flagged == 1


TRICKY = 'Жалобы на "кашель", «одышку»; температура 38,1.\nВторая строка, с запятой.\r\nТретья: ёлка — 😀'


def test_export_round_trip_in_every_format(curation_pool, curator, settings, tmp_path):
    settings.RELEASES_DIR = tmp_path / "releases"
    tricky = synthetic_make(TRICKY, "J06.9", example=curation_pool["real"][2])
    approve(curator, tricky, *curation_pool["synthetic"][:2])
    release = do_create_release(actor=curator, name="round-trip", filters={})
    release_export_run(release.pk)
    export = ReleaseExport.objects.get(release=release)
    assert (export.status, export.percent, export.progress_done) == ("done", 100, 3), export.error
    assert export.finished_at is not None and export.folder == "round-trip-v1"
    folder = release_folder(release)
    assert folder_verify(folder) == []
    expected = [{"idx": r.idx, "ICD-10": r.icd_code, "response": r.text, **r.fields}
                for r in release.notes.order_by("idx")]
    assert any(row["response"] == TRICKY for row in expected)
    jsonl = [json.loads(line) for line in (folder / "jsonl/train.jsonl").read_text(encoding="utf-8").splitlines()]
    assert jsonl == [{key: row[key] for key in jsonl[0]} for row in expected] and set(jsonl[0]) == set(expected[0])
    assert pq.read_table(folder / "data/train.parquet").to_pylist() == jsonl
    with (folder / "csv/train.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        csv_rows = list(reader)
    assert [r["response"] for r in csv_rows] == [r["response"] for r in expected]
    assert [r["anamnesis"] for r in csv_rows] == [r["anamnesis"] for r in expected]
    assert "private_data" in {r["anamnesis"] for r in csv_rows}
    card = (folder / "README.md").read_text(encoding="utf-8")
    assert "license: mit" in card and "round-trip" in card and "g-1" in card and "default-symptoms_example-ru" in card
    listed = {f["path"] for f in export.files}
    assert {"data/train.parquet", "jsonl/train.jsonl", "csv/train.csv", "README.md", "SHA256SUMS"} <= listed
    assert export.stats["rows"] == 3


def test_the_card_states_each_model_licence_older_notes_from_the_current_configuration(curation_pool, curator,
                                                                                      settings, tmp_path):
    settings.RELEASES_DIR = tmp_path / "releases"
    apache = "https://www.apache.org/licenses/LICENSE-2.0"
    # the pool's notes predate licences in provenance: smollm2 has a configuration now, gpt-4 none
    ModelConfig.objects.create(name="smollm2", backend="local", model_path="smollm2", licence="Apache-2.0",
                               licence_url=apache)
    ModelConfig.objects.create(name="gemma-ft", backend="local", model_path="g", licence="edited since")
    newer = synthetic_make("Женщина 40 лет, жалобы на кашель и слабость, температура 37,5 третий день подряд.",
                           "J06.9", model="gemma-ft")
    newer.metadata["model_config"] = {**newer.metadata["model_config"], "licence": "Gemma Terms of Use",
                                      "licence_url": "https://ai.google.dev/gemma/terms"}
    newer.save(update_fields=["metadata"])
    approve(curator, *curation_pool["synthetic"], newer)
    release = do_create_release(actor=curator, name="licences", filters={})

    models = {model["name"]: model for model in services.release_provenance(release)["model_configs"]}
    assert (models["smollm2"]["licence"], models["smollm2"]["licence_url"]) == ("Apache-2.0", apache)
    assert models["gemma-ft"]["licence"] == "Gemma Terms of Use"  # what the note recorded when it was written
    assert "licence" not in models["gpt-4"]

    release_export_run(release.pk)
    card = (release_folder(release) / "README.md").read_text(encoding="utf-8")
    assert "| Model licences | Apache-2.0; Gemma Terms of Use; not stated |" in card
    assert f"| smollm2 | Apache-2.0 | {apache} |" in card
    assert "| gemma-ft | Gemma Terms of Use | https://ai.google.dev/gemma/terms |" in card
    assert "| gpt-4 | not stated | not stated |" in card


def test_load_dataset_reads_the_exported_folder(curation_pool, curator, settings, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    settings.RELEASES_DIR = tmp_path / "releases"
    approve(curator, *curation_pool["synthetic"])
    release = do_create_release(actor=curator, name="hf", filters={})
    release_export_run(release.pk)
    import datasets

    loaded = datasets.load_dataset(str(release_folder(Release.objects.get(pk=release.pk))),
                                   cache_dir=str(tmp_path / "cache"))
    assert loaded["train"].num_rows == 6
    assert sorted(loaded["train"]["response"]) == sorted(n.text for n in curation_pool["synthetic"])


def test_commands_scan_and_release_with_progress(curation_pool, curator, settings, tmp_path):
    from io import StringIO

    from django.core.management import CommandError, call_command

    settings.RELEASES_DIR = tmp_path
    approve(curator, *curation_pool["synthetic"][:3], checked=False)
    out, err = StringIO(), StringIO()
    call_command("scan_notes", kind="memorisation", stdout=out, stderr=err)
    assert "6 notes scanned, 0 flagged" in out.getvalue()
    call_command("scan_notes", kind="duplicates", stdout=out, stderr=err)
    call_command("create_release", name="cli", filter=["code=J06"], description="Из консоли", stdout=out, stderr=err)
    release = Release.objects.get(name="cli")
    assert (release.note_count, release.export.status, release.created_by) == (1, "done", None)
    assert folder_verify(release_folder(release)) == [] and "cli v1: 1 notes" in out.getvalue()
    assert AuditRecord.objects.filter(action="create_release", actor=None).exists()
    with pytest.raises(CommandError, match="bad --filter"):
        call_command("create_release", name="cli", filter=["recall_min=много"], stdout=out, stderr=err)
    with pytest.raises(CommandError, match="No note can be released"):
        call_command("create_release", name="cli", filter=["code=Z99"], stdout=out, stderr=err)
    with pytest.raises(CommandError, match=r"Unknown filter key\(s\): cdoe"):  # ignored, it would release every note
        call_command("create_release", name="cli", filter=["cdoe=J06"], stdout=out, stderr=err)
    assert Release.objects.filter(name="cli").count() == 1


def test_importing_real_notes_invalidates_the_memorisation_check(curation_pool, curator):
    from generation.services import NoteRow, notes_import

    approve(curator, curation_pool["synthetic"][0])
    assert release_preview(filters={}).synthetic == 1
    notes_import(rows=[NoteRow(line=1, text="Жалобы на кашель и слабость три дня.", icd_code="J06.9", metadata={})],
                 source="new.jsonl", origin="real", source_dataset="RuMedTop3")
    preview = release_preview(filters={})
    assert preview.synthetic == 0 and "not checked for memorisation" in next(iter(preview.held_back))


@pytest.mark.django_db(transaction=True)
def test_a_note_reopened_while_a_release_is_made_stays_out_of_it(curation_pool, curator, monkeypatch):
    """The candidates are read, then another curator reopens one and commits, then the snapshot is written: the
    release checks its candidates again under a lock, so the reopened note is not frozen."""
    kept, reopened = curation_pool["synthetic"][:2]
    approve(curator, kept, reopened)
    first_read = []

    def reopen_in_another_session() -> None:
        try:
            do_transition_note(actor=curator, note=reopened, action="reopen", reason="a second look")
        finally:
            connection.close()

    def candidates_then_a_concurrent_reopen(notes):
        releasable = services_notes_releasable(notes)
        if first_read:
            return releasable
        first_read.extend(releasable.values_list("id", flat=True))
        reopening = threading.Thread(target=reopen_in_another_session)
        reopening.start()
        reopening.join()
        return Note.objects.filter(pk__in=first_read)  # what the release read before the reopen committed

    services_notes_releasable = services.notes_releasable
    monkeypatch.setattr(services, "notes_releasable", candidates_then_a_concurrent_reopen)
    release = do_create_release(actor=curator, name="race", filters={}, queue_export=False)
    assert sorted(first_read) == sorted([kept.pk, reopened.pk])
    assert list(release.notes.values_list("note_id", flat=True)) == [kept.pk]
