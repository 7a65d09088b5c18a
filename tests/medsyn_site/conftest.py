"""Fixtures of the site-wide browser tests (test_security_browser, test_layout_browser)."""

from __future__ import annotations

import dataclasses
import json
import uuid

import pytest

from review.assessment.services import (
    assignment_next,
    do_build_study_pool,
    do_create_study,
    do_open_study,
    do_submit_rating,
)
from review.curation.services import do_transition_note
from tests.generation.conftest import REAL_NOTE_TEXTS, TINY_GRAPH_ROWS
from tests.generation.factories import NoteFactory
from tests.review.conftest import CURATION_SYNTHETIC, REAL_TEXTS, synthetic_make


@pytest.fixture
def site(settings, make_user, tmp_path):
    """What the main pages show: a small graph, real and synthetic notes (some in the curation queue), an open
    study with ratings, and the users of every role."""
    from generation.models import ModelConfig
    from generation.services import prompt_templates_ensure
    from graph.importers import generic_payload
    from graph.services import graph_import
    from graph.store import store_for

    prompt_templates_ensure()  # a transactional test earlier in the suite may have flushed the seeded templates
    settings.GRAPH = dataclasses.replace(settings.GRAPH, database=f"medsyn_csp_{uuid.uuid4().hex[:10]}")
    store = store_for(settings.GRAPH)
    rows = tmp_path / "graph.jsonl"
    rows.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in TINY_GRAPH_ROWS), encoding="utf-8")
    graph_import(source="csp-test", files=[rows], parse=lambda: generic_payload(rows), store=store)

    for category, texts in REAL_NOTE_TEXTS.items():
        for n in range(3):
            NoteFactory(text=texts[0].format(n=n + 1), icd_code=category, split="train")
    for n, text in enumerate(REAL_TEXTS * 2):
        NoteFactory(text=f"{text} Визит {n}.", icd_code="J06")
        NoteFactory(synthetic=True, text=f"{text} Синтетика {n}.", icd_code="J06",
                    metadata={"generation_model": "gpt-4", "prompt_variant": "symptoms", "job_id": 1})
    ModelConfig.objects.create(name="remote-test", backend=ModelConfig.Backend.OPENAI, api_model="gpt-4")

    users = {role: make_user(role) for role in ("physician", "curator", "researcher", "admin")}
    queued = [synthetic_make(text, "J06.9") for text in CURATION_SYNTHETIC[:3]]
    for note in queued:
        do_transition_note(actor=users["curator"], note=note, action="submit")

    study = do_create_study(actor=users["curator"], name="CSP study", overlap_k=2)
    do_build_study_pool(actor=users["curator"], study=study, n_per_origin=2, seed=1)
    do_open_study(actor=users["curator"], study=study)
    rater = make_user("physician")
    while (assignment := assignment_next(study=study, physician=rater)) is not None:
        do_submit_rating(study=study, physician=rater, token=assignment.item.token,
                         answers={"origin": "real", "confidence": "3", "realism": "4", "plausibility": "4",
                                  "consistency": "5", "language": "3"})
    yield {"users": users, "study": study, "queued": queued}
    store.drop()
