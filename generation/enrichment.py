"""MKG enrichment: an LLM extracts symptoms from real notes (METHOD.md's prompt, temperature 0.2); each
becomes a proposed HAS_SYMPTOM edge with source "llm" that enters the graph only when a researcher accepts it.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from graph.schema import symptom_key

from .backends.base import GenerationRequest, backend_for
from .models import ModelConfig, Note, SymptomProposal

EXTRACTION_SYSTEM = "Ты — врач. Отвечай только списком, без комментариев."
EXTRACTION_USER = ("Выпиши из текста все симптомы, а не болезни, по одному на строку, без нумерации и без "
                   "комментариев.\n\nТекст: {text}")
EXTRACTION_TEMPERATURE = 0.2
_BULLET = re.compile(r"^\s*(?:[-*•–—]+|\d+[.)])\s*")
MAX_SYMPTOM_CHARS = 80


def symptoms_parse(answer: str) -> list[str]:
    """One symptom per line; bullets, numbering, trailing punctuation and chatter lines are dropped."""
    found: dict[str, str] = {}
    for line in answer.splitlines():
        text = _BULLET.sub("", line).strip().strip(".;,").strip()
        if not text or len(text) > MAX_SYMPTOM_CHARS or text.endswith(":") or not re.search(r"[а-яё]", text, re.I):
            continue
        found.setdefault(symptom_key(text), text.lower())
    return list(found.values())


def enrichment_run(*, model_config: ModelConfig, categories: list[str], notes_per_category: int = 20) -> dict:
    """Ask the model for the symptoms of up to notes_per_category real notes per category; record proposals.

    Idempotent: a note already counted for a proposal is not counted again, so a rerun (or a redelivered
    task) changes nothing but adds what is new.
    """
    notes = []
    for category in categories:
        notes += list(Note.objects.filter(origin=Note.Origin.REAL, icd_category=category)
                      .order_by("id")[:notes_per_category])
    config = ModelConfig(**{f.name: getattr(model_config, f.name) for f in ModelConfig._meta.concrete_fields})
    config.temperature = EXTRACTION_TEMPERATURE
    backend = backend_for(config)
    requests = [GenerationRequest(key=str(note.pk), system=EXTRACTION_SYSTEM,
                                  user=EXTRACTION_USER.format(text=note.text)) for note in notes]
    by_id = {str(note.pk): note for note in notes}
    counts = {"notes": len(notes), "failed": 0, "proposals_new": 0}
    batch_size = max(1, model_config.batch_size)
    for start in range(0, len(requests), batch_size):
        for result in backend.generate(requests[start:start + batch_size]):
            if not result.ok:
                counts["failed"] += 1
                continue
            note = by_id[result.key]
            with transaction.atomic():
                for symptom in symptoms_parse(result.text):
                    proposal, created = SymptomProposal.objects.select_for_update().get_or_create(
                        category=note.icd_category, symptom_key=symptom_key(symptom),
                        defaults={"symptom": symptom, "model_config": model_config})
                    counts["proposals_new"] += int(created)
                    if note.pk not in proposal.note_ids:
                        proposal.note_ids = [*proposal.note_ids, note.pk]
                        proposal.save(update_fields=["note_ids"])
    return counts


def do_review_symptom_proposals(*, actor: AbstractBaseUser, proposals: list[SymptomProposal], accept: bool) -> int:
    """Accept (publish as HAS_SYMPTOM edges with source "llm", one new graph version) or reject proposals."""
    from graph.importers import generic_payload
    from graph.services import graph_import

    pending = [p for p in proposals if p.status == SymptomProposal.Status.PROPOSED]
    if not pending:
        return 0
    version = ""
    if accept:
        rows = []
        for p in pending:
            rows.append({"kind": "node", "label": "Symptom", "key": p.symptom_key, "props": {"name": p.symptom}})
            rows.append({"kind": "edge", "type": "HAS_SYMPTOM", "from": {"label": "Category", "key": p.category},
                         "to": {"label": "Symptom", "key": p.symptom_key}, "source": "llm",
                         "props": {"count": p.support}})
        with tempfile.TemporaryDirectory(prefix="medsyn-enrich-") as tmp:
            path = Path(tmp) / f"llm-symptoms-{timezone.now():%Y%m%dT%H%M%S}.jsonl"
            path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
            outcome = graph_import(source="llm-enrichment", files=[path], parse=lambda: generic_payload(path),
                                   check_endpoints=True)
        version = str(outcome.version.pk)
    status = SymptomProposal.Status.ACCEPTED if accept else SymptomProposal.Status.REJECTED
    SymptomProposal.objects.filter(pk__in=[p.pk for p in pending], status=SymptomProposal.Status.PROPOSED).update(
        status=status, reviewed_by=actor, reviewed_at=timezone.now(), graph_version=version)
    return len(pending)
