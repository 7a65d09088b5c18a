"""MKG enrichment: an LLM extracts symptoms from real notes (METHOD.md's prompt, temperature 0.2); each
becomes a proposed HAS_SYMPTOM edge with source "llm" that enters the graph only when a researcher accepts it.
"""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from graph.schema import symptom_key
from medsyn_site.core.audit import audit_record, audit_write, audit_write_many
from medsyn_site.core.icd10 import icd_category_clean
from medsyn_site.core.jobs import task_send_on_commit
from medsyn_site.core.models import AuditEvent

from .backends.base import GenerationRequest, backend_for
from .models import ModelConfig, Note, SymptomProposal

EXTRACTION_SYSTEM = "Ты — врач. Отвечай только списком, без комментариев."
EXTRACTION_USER = ("Выпиши из текста все симптомы, а не болезни, по одному на строку, без нумерации и без "
                   "комментариев.\n\nТекст: {text}")
EXTRACTION_TEMPERATURE = 0.2
_BULLET = re.compile(r"^\s*(?:[-*•–—]+|\d+[.)])\s*")
MAX_SYMPTOM_CHARS = 80
NOTES_PER_CATEGORY = 20


def symptoms_parse(answer: str) -> list[str]:
    """One symptom per line; bullets, numbering, trailing punctuation and chatter lines are dropped."""
    found: dict[str, str] = {}
    for line in answer.splitlines():
        text = _BULLET.sub("", line).strip().strip(".;,").strip()
        if not text or len(text) > MAX_SYMPTOM_CHARS or text.endswith(":") or not re.search(r"[а-яё]", text, re.I):
            continue
        found.setdefault(symptom_key(text), text.lower())
    return list(found.values())


def enrichment_run(*, model_config: ModelConfig, categories: list[str],
                   notes_per_category: int = NOTES_PER_CATEGORY) -> dict:
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


@transaction.atomic
def do_start_symptom_extraction(*, actor: AbstractBaseUser | None, model_config: ModelConfig, categories: list[str],
                                notes_per_category: int = NOTES_PER_CATEGORY) -> list[str]:
    """Send an extraction of the symptoms of real notes of these ICD-10 categories to the model's worker queue
    (once committed, with its audit record). Returns the categories, cleaned; ValidationError when there is none
    or one is not a category."""
    from .jobs import queue_for
    from .tasks import run_symptom_extraction

    if model_config.backend == ModelConfig.Backend.TEMPLATE:
        raise ValidationError(_("%(model)s fills templates and reads no text: choose a language model to extract "
                                "symptoms.") % {"model": model_config.name})
    chosen, bad = set(), []
    for raw in filter(str.strip, categories):  # blank entries (a trailing comma) name nothing
        try:
            chosen.add(icd_category_clean(raw))
        except ValueError:
            bad.append(raw.strip())
    if bad:
        raise ValidationError(f"Not ICD-10 categories (a letter and two digits): {', '.join(bad)}.")
    if not chosen:
        raise ValidationError("Name at least one ICD-10 category.")
    chosen_sorted = sorted(chosen)
    audit_write(actor=actor, action=AuditEvent.START_SYMPTOM_EXTRACTION, obj=model_config,
                extra={"categories": chosen_sorted, "notes_per_category": notes_per_category})
    task_send_on_commit(run_symptom_extraction, args=[model_config.pk, chosen_sorted, notes_per_category],
                        queue=queue_for(model_config))
    return chosen_sorted


def do_review_symptom_proposals(*, actor: AbstractBaseUser, proposals: list[SymptomProposal], accept: bool) -> int:
    """Accept (publish as HAS_SYMPTOM edges with source "llm", one new graph version) or reject proposals.

    The graph is published first (it is not in the database's transaction); then each proposal still proposed
    changes state with its own audit record, in one transaction. Returns how many changed."""
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
    event = AuditEvent.ACCEPT_SYMPTOM_PROPOSAL if accept else AuditEvent.REJECT_SYMPTOM_PROPOSAL
    with transaction.atomic():
        # Another reviewer may have decided some of them meanwhile: theirs stand, and have their own records.
        changed = list(SymptomProposal.objects.select_for_update().filter(
            pk__in=[p.pk for p in pending], status=SymptomProposal.Status.PROPOSED))
        now = timezone.now()
        for proposal in changed:
            proposal.status, proposal.reviewed_by, proposal.reviewed_at = status, actor, now
            proposal.graph_version = version
        SymptomProposal.objects.bulk_update(changed, ["status", "reviewed_by", "reviewed_at", "graph_version"])
        audit_write_many(audit_record(actor=actor, action=event, obj=proposal,
                                      from_state=SymptomProposal.Status.PROPOSED, to_state=status,
                                      extra={"category": proposal.category, "symptom": proposal.symptom,
                                             "support": proposal.support, "graph_version": version})
                         for proposal in changed)
    return len(changed)
