"""Imports: ICD-10, RuMedBench symptoms, the generic JSONL format, Russian names, export, bad input."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from graph import services
from graph.importers import generic_payload, icd10_payload, icd10_ru_payload, rumedbench_payload
from graph.models import GraphVersion
from graph.names import icd10_names_ru
from graph.payload import graph_counts, graph_rows_export
from graph.services import graph_export, graph_import
from medsyn_site.core.errors import InputError
from medsyn_site.core.icd10 import icd_label_for_key

from .conftest import DRUG_ROWS, jsonl_write

pytestmark = pytest.mark.django_db


def test_icd10_chapter_hierarchy(graph_store):
    outcome = graph_import(source="icd10:X", files=[], parse=lambda: icd10_payload(only_chapters={"X"}),
                           store=graph_store)
    assert outcome.changed and outcome.version.status == GraphVersion.Status.PUBLISHED
    rows = graph_store.run("MATCH (c:Code {key: 'J06.9'})-[:CHILD_OF]->(k:Category)-[:CHILD_OF]->(b:Block)"
                           "-[:CHILD_OF]->(ch:Chapter) RETURN k.key AS k, b.key AS b, ch.key AS ch, ch.name AS name")
    assert rows == [{"k": "J06", "b": "J00-J06", "ch": "X", "name": "Diseases of the respiratory system"}]
    version_node = graph_store.run("MATCH (v:GraphVersion) RETURN v.key AS key, v.source AS source")
    assert version_node == [{"key": str(outcome.version.pk), "source": "icd10:X"}]


def test_full_who_icd10_payload_counts():
    payload = icd10_payload()
    counts = {label: len(nodes) for label, nodes in payload.nodes.items()}
    assert counts == {"Chapter": 22, "Block": 274, "Category": 2050, "Code": 10196}
    assert len(payload.edges) == 12520


def test_rumedbench_symptom_frequencies():
    payload = rumedbench_payload()
    assert len(payload.nodes["Symptom"]) == 219
    j06 = payload.nodes["Category"]["J06"]
    assert j06["n_notes"] > 50 and 0 <= j06["n_examples"] < j06["n_notes"]
    by_source = {}
    for edge, props in payload.edges.items():
        if edge.from_key == "J06" and edge.to_key == "кашель":
            by_source[edge.source] = props["count"]
    # the lexicon count includes every annotated visit, and finds more in the complaint texts
    assert by_source["rumedbench:lexicon"] > by_source["rumedbench:rec_markup"] > 0


def test_bad_rumedtop3_lines_are_all_reported(tmp_path):
    top3 = tmp_path / "RuMedTop3"
    top3.mkdir()
    jsonl_write(top3 / "train_v1.jsonl", [{"idx": "1", "symptoms": "Кашель три дня.", "code": "J06"}, "{oops",
                                          {"idx": "3", "symptoms": "", "code": "J06"},
                                          {"idx": "4", "symptoms": "Насморк.", "code": "насморк"}])
    jsonl_write(top3 / "dev_v1.jsonl", [])
    with pytest.raises(InputError) as caught:
        rumedbench_payload(tmp_path)
    assert caught.value.source == "train_v1.jsonl"
    assert [line for line, _ in caught.value.problems] == [2, 3, 4]


def test_reimporting_the_same_files_changes_nothing(small_graph, graph_store):
    before = graph_rows_export(graph_store)
    again = graph_import(source="test-small", files=[], parse=lambda: pytest.fail("must not parse again"),
                         store=graph_store)
    assert not again.changed and again.version.pk == small_graph.version.pk
    assert graph_rows_export(graph_store) == before
    assert GraphVersion.objects.count() == 1


def test_generic_jsonl_import_and_idempotence(small_graph, graph_store, tmp_path):
    path = jsonl_write(tmp_path / "drugs.jsonl", DRUG_ROWS)
    outcome = graph_import(source="generic", files=[path], parse=lambda: generic_payload(path), check_endpoints=True,
                           store=graph_store)
    assert outcome.changed
    rows = graph_store.run("MATCH (:Category {key: 'J06'})-[:TREATED_BY]->(d:Drug)-[:IN_GROUP]->(g:PharmGroup) "
                           "RETURN d.name AS d, d.atc AS atc, g.name AS g")
    assert rows == [{"d": "Амоксициллин", "atc": "J01CA04", "g": "Пенициллины"}]
    before = graph_rows_export(graph_store)
    # the same content again (even under another file name) is recognised and changes nothing
    copy = jsonl_write(tmp_path / "drugs-copy.jsonl", DRUG_ROWS)
    assert not graph_import(source="generic", files=[copy], parse=lambda: generic_payload(copy),
                            store=graph_store).changed
    assert graph_rows_export(graph_store) == before


BAD_CASES = [
    ("{not json", 2, "not valid JSON"),
    ({"kind": "vertex", "label": "Drug", "key": "x"}, 2, "kind must be"),
    ({"kind": "node", "label": "Disease", "key": "x"}, 2, "unknown node label"),
    ({"kind": "node", "label": "Drug", "key": ""}, 2, "key must be"),
    ({"kind": "node", "label": "Category", "key": "J06.9"}, 2, "not an ICD-10 Category"),
    ({"kind": "node", "label": "Drug", "key": "x", "props": {"dose": {"mg": 5}}}, 2, "must be a string"),
    ({"kind": "node", "label": "Drug", "key": "x", "props": {"search_text": "x"}}, 2, "reserved"),
    ({"kind": "edge", "type": "CURES", "from": {"label": "Drug", "key": "a"}, "to": {"label": "Drug", "key": "b"}},
     2, "unknown edge type"),
    ({"kind": "edge", "type": "IN_GROUP", "from": {"label": "Drug", "key": "a"}}, 2, "from and to"),
    ({"kind": "edge", "type": "IN_GROUP", "from": {"label": "Symptom", "key": "a"},
      "to": {"label": "PharmGroup", "key": "penicillins"}}, 2, "cannot go from Symptom"),
    ({"kind": "edge", "type": "TREATED_BY", "from": {"label": "Category", "key": "Z99"},
      "to": {"label": "Drug", "key": "amoxicillin"}}, 2, "unknown Category 'Z99'"),
]


@pytest.mark.parametrize(("bad_row", "line", "message"), BAD_CASES, ids=[c[2] for c in BAD_CASES])
def test_malformed_generic_file_reports_lines_and_imports_nothing(small_graph, graph_store, tmp_path, bad_row, line,
                                                                 message):
    path = jsonl_write(tmp_path / "bad.jsonl", [DRUG_ROWS[0], bad_row, *DRUG_ROWS[1:]])
    before = graph_rows_export(graph_store)
    versions = GraphVersion.objects.count()
    with pytest.raises(InputError) as caught:
        graph_import(source="generic", files=[path], parse=lambda: generic_payload(path), check_endpoints=True,
                     store=graph_store)
    assert any(problem_line == line and message in text for problem_line, text in caught.value.problems), \
        caught.value.problems
    assert graph_rows_export(graph_store) == before
    assert GraphVersion.objects.count() == versions


def test_several_problems_are_all_reported(tmp_path):
    path = jsonl_write(tmp_path / "bad.jsonl", [DRUG_ROWS[0], "[]", DRUG_ROWS[1], "{", {"kind": "x"}])
    assert [line for line, _ in generic_payload(path).problems] == [2, 4, 5]


def test_bad_lines_and_missing_endpoints_are_reported_together(small_graph, graph_store, tmp_path):
    """Every bad line in one report: a line that does not parse does not hide an edge to a node that is missing."""
    rows = [DRUG_ROWS[0], "{oops", *DRUG_ROWS[1:],
            {"kind": "edge", "type": "IN_GROUP", "from": {"label": "Drug", "key": "amoxicillin"},
             "to": {"label": "PharmGroup", "key": "nowhere"}},
            {"kind": "node", "label": "Drug", "key": "x", "props": {"name": "a\u0000b"}}]
    path = jsonl_write(tmp_path / "bad.jsonl", rows)
    with pytest.raises(InputError) as caught:
        graph_import(source="generic", files=[path], parse=lambda: generic_payload(path), check_endpoints=True,
                     store=graph_store)
    assert caught.value.source == "bad.jsonl"
    assert [(line, text.split(" ")[0]) for line, text in caught.value.problems] == [
        (2, "not"), (8, "IN_GROUP"), (9, "property")]
    assert "control character" in caught.value.problems[2][1]


@pytest.mark.parametrize("key", ["a\u0000b", "\u0007", "x" * 201])
def test_a_key_with_a_control_character_or_too_long_is_a_bad_line(tmp_path, key):
    path = tmp_path / "bad.jsonl"
    quoted = json.dumps(key)  # a JSON escape (\u0000): the file is clean text, the key is not
    node = {"kind": "node", "label": "Drug", "key": "KEY"}
    edge = {"kind": "edge", "type": "IN_GROUP", "from": {"label": "Drug", "key": "KEY"},
            "to": {"label": "PharmGroup", "key": "g"}}
    path.write_text("".join(json.dumps(row).replace('"KEY"', quoted) + "\n" for row in (node, edge)),
                    encoding="utf-8")
    problems = generic_payload(path).problems
    assert [line for line, _ in problems] == [1, 2] and "control characters" in problems[0][1]


def test_jsonl_with_a_byte_order_mark_and_crlf_imports(small_graph, graph_store, tmp_path):
    path = tmp_path / "drugs.jsonl"
    path.write_bytes(jsonl_write(tmp_path / "plain.jsonl", DRUG_ROWS).read_bytes().replace(b"\n", b"\r\n"))
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    assert graph_import(source="generic", files=[path], parse=lambda: generic_payload(path), check_endpoints=True,
                        store=graph_store).changed
    assert graph_store.run("MATCH (d:Drug) RETURN d.name AS name") == [{"name": "Амоксициллин"}]


def test_jsonl_in_cp1251_is_refused_naming_the_encoding_and_every_line(tmp_path):
    path = tmp_path / "drugs.jsonl"
    path.write_bytes(jsonl_write(tmp_path / "utf8.jsonl", DRUG_ROWS).read_text(encoding="utf-8").encode("cp1251"))
    problems = generic_payload(path, name="препараты.jsonl").problems
    assert problems[0] == (0, "not UTF-8 text: it looks like Windows-1251 (Cyrillic); save it as "
                              "UTF-8 and upload it again")
    assert [line for line, _ in problems[1:5]] == [1, 2, 3, 6]  # the lines with Cyrillic text, every one


def test_interrupted_import_leaves_previous_graph_intact(small_graph, graph_store, tmp_path, monkeypatch):
    path = jsonl_write(tmp_path / "drugs.jsonl", DRUG_ROWS)
    before = graph_rows_export(graph_store)
    real_write = services.payload_write

    def write_then_die(target, payload, progress=None):
        real_write(target, payload, progress)
        target.run("MATCH (s:Symptom) DETACH DELETE s")
        raise KeyboardInterrupt("killed halfway")

    monkeypatch.setattr(services, "payload_write", write_then_die)
    with pytest.raises(KeyboardInterrupt):
        graph_import(source="generic", files=[path], parse=lambda: generic_payload(path), store=graph_store)
    assert graph_rows_export(graph_store) == before
    assert graph_store.staging_leftovers() == []
    assert GraphVersion.objects.latest("id").status == GraphVersion.Status.FAILED


def test_export_then_import_reproduces_the_graph(small_graph, graph_store, tmp_path, settings):
    import dataclasses

    from graph.store import store_for

    jsonl = jsonl_write(tmp_path / "drugs.jsonl", DRUG_ROWS)
    graph_import(source="generic", files=[jsonl], parse=lambda: generic_payload(jsonl), store=graph_store)
    exported = tmp_path / "export.jsonl"
    graph_export(exported, store=graph_store)
    other = store_for(dataclasses.replace(settings.GRAPH, database=settings.GRAPH.database + "_copy"))
    try:
        graph_import(source="generic", files=[exported], parse=lambda: generic_payload(exported), replace=True,
                     check_endpoints=True, store=other)
        assert graph_rows_export(other) == graph_rows_export(graph_store)
        assert graph_counts(other) == graph_counts(graph_store)
    finally:
        other.drop()


def test_russian_names_csv(small_graph, graph_store, tmp_path):
    path = tmp_path / "names.csv"
    path.write_text("code,name_ru\nJ06,Острые инфекции верхних дыхательных путей\nJ06.9,ОРВИ неуточнённая\n",
                    encoding="utf-8")
    graph_import(source="ru", files=[path], parse=lambda: icd10_ru_payload(path), store=graph_store)
    rows = graph_store.run("MATCH (n:Code {key: 'J06.9'}) RETURN n.name_ru AS ru, n.search_text AS st")
    assert rows[0]["ru"] == "ОРВИ неуточнённая" and "орви неуточненная" in rows[0]["st"]


def test_bad_russian_names_csv_reports_every_bad_row_with_the_line_it_starts_on(tmp_path):
    path = tmp_path / "names.csv"
    path.write_text('code,name_ru\nJ06,ok\nnot a code,x\nJ07,\nJ08,a,b\nJ09\nJ10,"в кавычках"лишнее\n'
                    'J11,"многострочное\nимя"\nJ12,"не закрыто\nJ13,ok\n', encoding="utf-8")
    problems = icd10_ru_payload(path).problems
    assert [line for line, _ in problems] == [3, 4, 5, 6, 7, 8, 10]
    assert problems[2][1] == "expected 2 fields (code,name_ru), got 3" and problems[3][1].endswith("got 1")
    assert "quot" in problems[4][1] and "runs over lines 8-9" in problems[5][1] and "quote" in problems[6][1]


def test_russian_names_csv_with_a_byte_order_mark_imports(small_graph, graph_store, tmp_path):
    path = tmp_path / "names.csv"
    path.write_bytes("code,name_ru\r\nJ06.9,ОРВИ неуточнённая\r\n".encode("utf-8-sig"))
    graph_import(source="ru", files=[path], parse=lambda: icd10_ru_payload(path), store=graph_store)
    assert graph_store.run("MATCH (n:Code {key: 'J06.9'}) RETURN n.name_ru AS ru") == [{"ru": "ОРВИ неуточнённая"}]


def test_russian_names_csv_in_cp1251_is_refused_naming_the_encoding(tmp_path):
    path = tmp_path / "names.csv"
    path.write_bytes("code,name_ru\nJ06,Острые инфекции\nJ06.9,ОРВИ\n".encode("cp1251"))
    problems = icd10_ru_payload(path).problems
    assert "looks like Windows-1251 (Cyrillic); save it as UTF-8" in problems[0][1]
    assert [line for line, _ in problems][:3] == [0, 2, 3]


class Terminal(io.StringIO):
    """A stream that says it is a terminal: the command draws its progress bar only on one."""

    def isatty(self) -> bool:
        return True


def test_import_command_prints_progress_and_reports_bad_lines(graph_store, tmp_path):
    good = jsonl_write(tmp_path / "drugs.jsonl", DRUG_ROWS[:2] + DRUG_ROWS[3:4])
    out, err = io.StringIO(), Terminal()
    call_command("graph_import", str(good), stdout=out, stderr=err)
    # the bar counts nodes and edges written: two nodes and one edge
    assert "import drugs.jsonl: 100%" in err.getvalue() and "3/3" in err.getvalue()
    assert "graph version v" in out.getvalue()
    out = io.StringIO()
    call_command("graph_import", str(good), stdout=out, stderr=io.StringIO())
    assert "unchanged" in out.getvalue()
    bad = jsonl_write(tmp_path / "bad.jsonl", [DRUG_ROWS[0], "{oops"])
    err = io.StringIO()
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("graph_import", str(bad), stdout=io.StringIO(), stderr=err)
    assert "bad.jsonl: line 2: not valid JSON" in err.getvalue()


def test_graph_seed_command_full_graph_is_idempotent(graph_store, capsys):
    call_command("graph_seed")
    counts = graph_counts(graph_store)
    assert counts["nodes"]["Category"] == 2050 and counts["nodes"]["Symptom"] == 219
    assert counts["edges"]["HAS_SYMPTOM"] > 4000
    # the shipped Russian names (data/icd10/icd10_ru.csv): every category that has notes has one
    named = graph_store.run("MATCH (c:Category) WHERE c.name_ru IS NOT NULL RETURN c.key AS key")
    assert {row["key"] for row in named} == {code for code in icd10_names_ru() if icd_label_for_key(code) == "Category"}
    assert graph_store.run("MATCH (c:Category) WHERE c.n_notes > 0 AND c.name_ru IS NULL RETURN c.key") == []
    call_command("graph_seed")
    assert "unchanged" in capsys.readouterr().out
    assert GraphVersion.objects.filter(status=GraphVersion.Status.PUBLISHED).count() == 1


@pytest.mark.django_db(transaction=True)
def test_import_killed_mid_write_leaves_previous_graph_intact(graph_store, tmp_path):
    """SIGKILL a real `graph_import` process while it writes; the next import cleans up its staging key."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from urllib.parse import urlsplit, urlunsplit

    from django.conf import settings
    from django.db import connection

    from graph.store.falkordb_store import FalkorDBStore

    graph_store.run("CREATE (:Drug {key: 'before', name: 'unchanged'})")
    before = graph_rows_export(graph_store)
    big = jsonl_write(tmp_path / "big.jsonl", [{"kind": "node", "label": "Drug", "key": f"d{i}",
                                                "props": {"name": f"drug number {i}", "n": i}}
                                               for i in range(150_000)])
    env = dict(os.environ)
    test_db = connection.settings_dict["NAME"]
    env["DATABASE_URL"] = urlunsplit(urlsplit(env["DATABASE_URL"])._replace(path=f"/{test_db}"))
    env["GRAPH_URL"] = urlunsplit(urlsplit(settings.GRAPH.url)._replace(path=f"/{settings.GRAPH.database}"))
    output = tmp_path / "output.txt"

    def drugs_written() -> int:
        """Drug nodes in the import's staging graph, beyond the one copied from the live graph."""
        staging = graph_store.staging_leftovers()
        if not staging:
            return 0
        store = FalkorDBStore(settings.GRAPH, graph_name=staging[0])
        try:
            return store.run("MATCH (d:Drug) RETURN count(d) AS c")[0]["c"] - 1
        finally:
            store.close()

    with output.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "manage.py", "graph_import", str(big)], cwd=settings.BASE_DIR,
                                env=env, stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while drugs_written() <= 0 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert b"published" not in output.read_bytes(), output.read_bytes()[-300:]
    assert graph_rows_export(graph_store) == before
    assert graph_store.staging_leftovers(), "the kill should have hit the staging graph"
    small = jsonl_write(tmp_path / "small.jsonl", DRUG_ROWS[:2])
    graph_import(source="generic", files=[small], parse=lambda: generic_payload(small), store=graph_store)
    assert graph_store.staging_leftovers() == []
    assert graph_store.run("MATCH (d:Drug) RETURN count(d) AS c") == [{"c": 2}]
