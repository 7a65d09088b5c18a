"""Graph fixtures: every test gets its own FalkorDB graph key on the suite's server."""

from __future__ import annotations

import dataclasses
import json
import uuid
from functools import lru_cache
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from graph.payload import GraphPayload
from graph.store import store_for
from tests.medsyn_site.core.s3_server import s3, s3_bucket, s3_server  # noqa: F401 - the S3 server of test_storage

SMALL_CHAPTERS = {"X", "XVIII"}  # respiratory system; symptoms and signs


@pytest.fixture
def graph_store(settings):
    """A store on a fresh graph, also made the product's settings.GRAPH for the test."""
    config = dataclasses.replace(django_settings.GRAPH, database=f"medsyn_test_{uuid.uuid4().hex[:10]}")
    settings.GRAPH = config
    store = store_for(config)
    yield store
    for name in store.staging_leftovers():
        store._db.connection.delete(name)
    store.drop()


@lru_cache(maxsize=1)
def _small_payload() -> GraphPayload:
    from graph.importers import icd10_payload, rumedbench_payload

    payload = icd10_payload(only_chapters=SMALL_CHAPTERS)
    payload.merge(rumedbench_payload())
    return payload


@pytest.fixture
def small_graph(graph_store, db):
    """ICD-10 chapters X and XVIII plus every RuMedBench symptom edge, published as one version."""
    from graph.services import graph_import

    outcome = graph_import(source="test-small", files=[], parse=_small_payload, store=graph_store)
    return outcome


def jsonl_write(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return path


DRUG_ROWS = [
    {"kind": "node", "label": "PharmGroup", "key": "penicillins", "props": {"name": "Пенициллины"}},
    {"kind": "node", "label": "Drug", "key": "amoxicillin", "props": {"name": "Амоксициллин", "atc": "J01CA04"}},
    {"kind": "node", "label": "Symptom", "key": "Осиплость голоса", "props": {"name": "осиплость голоса"}},
    {"kind": "edge", "type": "IN_GROUP", "from": {"label": "Drug", "key": "amoxicillin"},
     "to": {"label": "PharmGroup", "key": "penicillins"}},
    {"kind": "edge", "type": "TREATED_BY", "from": {"label": "Category", "key": "J06"},
     "to": {"label": "Drug", "key": "amoxicillin"}, "source": "curated"},
    {"kind": "edge", "type": "HAS_SYMPTOM", "from": {"label": "Code", "key": "J06.9"},
     "to": {"label": "Symptom", "key": "осиплость голоса"}, "source": "curated", "props": {"count": 3}},
]
