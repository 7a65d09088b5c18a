"""Instruction sets: Alpaca records (instruction, input, output) built from real notes and the graph, the MedSyn
fine-tuning data (METHOD.md, "Instruction dataset and fine-tuning": the symptoms -> note and disease -> note
families, in the product's three prompt variants).

For each real note of the chosen split (never an evaluation split): its category, the symptoms the graph links to
that category which the note mentions (the lexicon matcher, lexicon.SymptomLexicon) plus accepted LLM proposals
extracted from that very note, and an example note of the same category other than itself, rendered with one prompt
template per variant exactly as a generation job renders them (prompts.prompt_build_from_template); the output is the
note. instruction is the template's system text and input its user text, so alpaca_wrap(instruction, input) is the
prompt a local model gets at generation time. A set's templates are all instructions (the default: the method's) or
all completion templates; its provenance records which (prompt_style), and a model fine-tuned on it is registered with
the matching prompt format (finetune.finetune_prompt_format), so it is given at generation time the prompts it learnt.

The same request and data always give the same records: the imagined patient (sex, age) and the example note are
drawn from RNGs seeded by (seed, variant, the note's category and text), so two notes with the same text in a
category give identical records, which the deduplication then keeps once. Records are capped per category (notes in a
seeded order, all of a note's records together) and a seeded share of the notes, with all their records, is held out
for validation.

A build (do_build_instruction_set) writes, under settings.INSTRUCTION_SETS_DIR/<name>/v<version>/:

    train.jsonl         every record, one JSON object per line, keys in this order: instruction, input, output,
                        category, variant, note_id, part ("train" or "validation"); its SHA-256 is on the set
    datasets/           data/train.parquet, data/validation.parquet and README.md (a dataset card whose YAML header
                        declares both splits): datasets.load_dataset(<folder>) gives a DatasetDict
    datasets.zip        the datasets folder, for download
    SHA256SUMS          `sha256sum -c` format, for every file above

A build of RuMedTop3 train (4.7k notes, 11.6k records) takes 6-9 s in a fresh process on the 2-core development
machine, most of it matching the lexicon (razdel's tokeniser) and loading pymorphy3: too long for a request
(bench/bench_instruction_set.py). So a request reserves the set's version (status building) and an
InstructionSetBuild job on the default queue computes and writes it (ready, or failed with the reason). A preview
computes the same records in the request (nothing written); the lexicon keeps its answers per process, so the next
preview of the same split answers in about a second.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
import re
import shutil
import time
import uuid
import zipfile
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import yaml
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_slug
from django.db import connection, transaction
from django.db.models import Count, F, Max, QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_noop

from generation.jobs import SEED_RANGE, _number, _whole, prompt_inputs  # the plan request's rules
from generation.models import Note, PromptTemplate, SymptomProposal
from generation.planning import DEFAULT_MIN_WORDS, TEMPLATE_EXAMPLES, ExampleNote, examples_group
from generation.prompts import PromptTooLongError, prompt_build_from_template, template_is_completion
from generation.selectors import prompt_template_current
from graph.lexicon import symptom_lexicon
from graph.sampling import SamplingData, sampling_data_load
from graph.store import get_graph_store
from medsyn_site.core.audit import audit_write
from medsyn_site.core.jobs import job_send_on_commit
from medsyn_site.core.models import AuditEvent, JobStatus
from medsyn_site.core.progress import Progress, ProgressRecorder
from medsyn_site.core.text import content_hash

from .models import InstructionSet, InstructionSetBuild

logger = logging.getLogger("medsyn.training")

# Splits whose notes are kept for evaluation (RuMedTop3 dev and test): an instruction set never reads them, neither
# as outputs nor as example notes, or a model fine-tuned on it would be scored on notes it was trained on.
EVALUATION_SPLITS = frozenset({"dev", "test", "val", "validation"})
VARIANTS: tuple[str, ...] = tuple(PromptTemplate.Variant.values)  # symptoms_example, symptoms, code
DEFAULT_LANGUAGE = "ru"
PARTS = ("train", "validation")
RECORD_KEYS = ("instruction", "input", "output", "category", "variant", "note_id", "part")
DEFAULT_VALIDATION_SHARE = 0.05
# The kind of prompts a set's records hold (its templates'): the method's instructions, or completion templates.
PROMPT_STYLE_INSTRUCTION = "instruction"
PROMPT_STYLE_COMPLETION = "completion"
MAX_VALIDATION_SHARE = 0.5
MAX_CAP_PER_CATEGORY = 1_000_000

JSONL_NAME = "train.jsonl"
DATASETS_DIR = "datasets"
DATASETS_ZIP = "datasets.zip"
SUMS_NAME = "SHA256SUMS"
DOWNLOADS = (JSONL_NAME, DATASETS_ZIP)  # the files the page and the API hand out
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed member times: the same set always zips to the same bytes
# JSON allows these raw, but str.splitlines() and some JSONL readers break lines at them (a regex: str.translate is
# over ten times slower on non-ASCII text).
_JSONL_LINE_BREAKS = re.compile("[\u0085\u2028\u2029]")
_SCHEMA = pa.schema([pa.field("instruction", pa.string()), pa.field("input", pa.string()),
                     pa.field("output", pa.string()), pa.field("category", pa.string()),
                     pa.field("variant", pa.string()), pa.field("note_id", pa.int64()), pa.field("part", pa.string())])
_FEATURE_DTYPES = {pa.string(): "string", pa.int64(): "int64"}


# --- The request ----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InstructionSetRequest:
    """What a user asks for; build it from user input with instruction_set_request_from. templates: PromptTemplate
    ids, one per variant (empty: the current Russian templates); cap_per_category None: no cap."""

    split: str
    name: str = ""
    source_dataset: str = ""
    templates: tuple[int, ...] = ()
    seed: int = 17
    cap_per_category: int | None = None
    validation_share: float = DEFAULT_VALIDATION_SHARE

    def as_parameters(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "templates": list(self.templates)}


def split_check(split: str, *, source_dataset: str = "") -> str:
    """The split, stripped; ValidationError when it is an evaluation split or holds no real note."""
    split = split.strip()
    if split.lower() in EVALUATION_SPLITS:
        raise ValidationError(_("The %(split)s split holds evaluation notes: an instruction set is built only from "
                                "training notes (for example the train split), never from dev or test notes.")
                              % {"split": split})
    notes = _split_notes(split, source_dataset)
    if not split or not notes.exists():
        raise ValidationError(_("No real note is in the split %(split)r%(dataset)s.") % {
            "split": split, "dataset": _(" of %(d)s") % {"d": source_dataset} if source_dataset else ""})
    return split


def _name(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(_("A name is required."))
    name = raw.strip()
    try:
        validate_slug(name)  # the name is a folder under INSTRUCTION_SETS_DIR: no path separators, no dots
    except ValidationError:
        raise ValueError(_("Letters, digits, hyphens and underscores only.")) from None
    if len(name) > InstructionSet._meta.get_field("name").max_length:
        raise ValueError(_("At most %(n)d characters.") % {"n": InstructionSet._meta.get_field("name").max_length})
    return name


def _text(raw: object) -> str:
    if not isinstance(raw, str) or "\x00" in raw:
        raise ValueError(_("Text is required."))
    return raw.strip()


def _template_ids(raw: object) -> tuple[int, ...]:
    if not isinstance(raw, list | tuple) or any(isinstance(i, bool) or not isinstance(i, int) or not 0 < i <= 2**63 - 1
                                                for i in raw):
        raise ValueError(_("A list of prompt template ids is required."))
    return tuple(raw)


REQUEST_RULES: dict[str, Callable[[object], Any]] = {
    "split": _text,
    "name": _name,
    "source_dataset": _text,
    "templates": _template_ids,
    "seed": _whole(*SEED_RANGE),
    "cap_per_category": _whole(1, MAX_CAP_PER_CATEGORY),
    "validation_share": _number(0, MAX_VALIDATION_SHARE),
}


def instruction_set_request_from(data: Mapping[str, Any], *, require_name: bool = True) -> InstructionSetRequest:
    """The one validation of an instruction set request (the form, the API and the command all build theirs here).
    data holds typed values; an absent or None value takes the default. Raises ValidationError by field name: an
    evaluation split, a split with no real note, templates that are not one per variant."""
    values, errors = {}, {}
    for spec in dataclasses.fields(InstructionSetRequest):
        raw = data.get(spec.name)
        if raw is None or (spec.name == "name" and raw == "" and not require_name):
            if spec.name == "split" or (spec.name == "name" and require_name):
                errors[spec.name] = [_("This field is required.")]
            continue
        try:
            values[spec.name] = REQUEST_RULES[spec.name](raw)
        except ValueError as error:
            errors[spec.name] = [str(error)]
    if "split" in values:
        try:
            values["split"] = split_check(values["split"], source_dataset=values.get("source_dataset", ""))
        except ValidationError as error:
            errors["split"] = error.messages
    if "templates" in values:
        try:
            templates_resolve(values["templates"])
        except ValidationError as error:
            errors["templates"] = error.messages
    if errors:
        raise ValidationError(errors)
    return InstructionSetRequest(**values)


# --- Reads ----------------------------------------------------------------------------------------------------------

def instruction_sets_list() -> QuerySet[InstructionSet]:
    """Every set, newest first."""
    return InstructionSet.objects.select_related("created_by", "build").order_by("-id")


def _split_notes(split: str, source_dataset: str = "") -> QuerySet[Note]:
    notes = Note.objects.filter(origin=Note.Origin.REAL, split=split)
    return notes.filter(source_dataset=source_dataset) if source_dataset else notes


def training_splits() -> list[dict[str, Any]]:
    """The splits of real notes an instruction set can be built from (evaluation splits left out), with their note
    counts by source data set: [{split, source_dataset, notes}]."""
    rows = (Note.objects.filter(origin=Note.Origin.REAL).exclude(split="").values("split", "source_dataset")
            .annotate(notes=Count("id")).order_by("split", "source_dataset"))
    return [row for row in rows if row["split"].lower() not in EVALUATION_SPLITS]


def templates_default(language: str = DEFAULT_LANGUAGE) -> list[PromptTemplate]:
    """The current default template of each variant in the language (the seeded ones, or their latest edit)."""
    try:
        return [prompt_template_current(variant=variant, language=language) for variant in VARIANTS]
    except PromptTemplate.DoesNotExist:
        raise ValidationError(_("The default %(language)s prompt templates are missing: run manage.py "
                                "generation_defaults.") % {"language": language}) from None


def templates_resolve(ids: Iterable[int]) -> list[PromptTemplate]:
    """Prompt template versions by id, in variant order; exactly one per variant (none given: templates_default), all
    instructions or all completion templates (templates_prompt_style)."""
    ids = list(ids)
    if not ids:
        return templates_default()
    found = PromptTemplate.objects.in_bulk(ids)
    if missing := sorted(set(ids) - set(found)):
        raise ValidationError(_("No prompt template with the id(s) %(ids)s.") % {"ids": ", ".join(map(str, missing))})
    by_variant: dict[str, list[PromptTemplate]] = defaultdict(list)
    for template in found.values():
        by_variant[template.variant].append(template)
    problems = [variant for variant in VARIANTS if len(by_variant[variant]) != 1]
    if problems:
        raise ValidationError(_("Choose exactly one prompt template for each variant (%(variants)s); not so for: "
                                "%(problems)s.") % {"variants": ", ".join(VARIANTS), "problems": ", ".join(problems)})
    templates = [by_variant[variant][0] for variant in VARIANTS]
    templates_prompt_style(templates)
    return templates


def templates_prompt_style(templates: Iterable[PromptTemplate]) -> str:
    """PROMPT_STYLE_COMPLETION when every template is a completion template (for a base model), else
    PROMPT_STYLE_INSTRUCTION; ValidationError when they mix the two, since a fine-tuned model is given one prompt
    format at generation time (finetune.finetune_prompt_format)."""
    styles = {template_is_completion(template.name) for template in templates}
    if len(styles) > 1:
        raise ValidationError(_("Choose instruction templates for every variant, or completion templates (names "
                                "ending in -completion) for every variant, not both: a fine-tuned model is given one "
                                "prompt format."))
    return PROMPT_STYLE_COMPLETION if styles == {True} else PROMPT_STYLE_INSTRUCTION


def instruction_set_prompt_style(instruction_set: InstructionSet) -> str:
    """The style of the prompts the set's records hold: its templates' (provenance), instruction prompts (the method's
    Alpaca records) when the provenance does not name them."""
    provenance = instruction_set.provenance or {}
    if provenance.get("prompt_style") in (PROMPT_STYLE_COMPLETION, PROMPT_STYLE_INSTRUCTION):
        return provenance["prompt_style"]
    names = [template.get("name", "") for template in provenance.get("templates") or [] if isinstance(template, dict)]
    if names and all(template_is_completion(name) for name in names):
        return PROMPT_STYLE_COMPLETION
    return PROMPT_STYLE_INSTRUCTION


def template_choices(variant: str) -> QuerySet[PromptTemplate]:
    """Every version of every template of a variant (the form's choices), current ones first."""
    return PromptTemplate.objects.filter(variant=variant).order_by("-is_current", "language", "name", "-version")


# --- Records --------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InstructionRecord:
    instruction: str
    input: str
    output: str
    category: str
    variant: str
    note_id: int
    part: str = "train"

    def key(self) -> tuple[str, str, str]:
        return self.instruction, self.input, self.output

    def as_dict(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in RECORD_KEYS}


@dataclass(frozen=True)
class SourceNote:
    note_id: int
    icd_code: str
    category: str
    text: str


@dataclass
class InstructionSetPlan:
    """What a build writes (records, in file order) and what a preview shows (counts, skipped)."""

    records: list[InstructionRecord]
    counts: dict[str, dict[str, dict[str, int]]]  # {"by_category": {C: {"train": n, "validation": n}}, "by_variant"}
    skipped: dict[str, int]
    provenance: dict[str, Any]
    note_ids: list[int]  # the notes whose text is the output of a record
    templates: list[PromptTemplate] = field(default_factory=list)

    @property
    def n_train(self) -> int:
        return sum(part["train"] for part in self.counts["by_category"].values())

    @property
    def n_validation(self) -> int:
        return sum(part["validation"] for part in self.counts["by_category"].values())

    @property
    def total(self) -> int:
        return len(self.records)


def _category_symptoms(data: SamplingData, category: str) -> dict[str, str]:
    """The symptoms the graph links to a category (over its symptom donors, as generation samples them), key -> name."""
    entry = data.categories.get(category)
    names: dict[str, str] = {}
    for symptoms in (entry.donors.values() if entry else ()):
        for name, _weight in symptoms:
            names.setdefault(name, name)
    return names


def accepted_proposals(note_ids: set[int], categories: set[str]) -> dict[int, list[str]]:
    """Accepted LLM symptom proposals (published as HAS_SYMPTOM {source: llm} edges) by the note they were extracted
    from: the model read them in that very note."""
    found: dict[int, list[str]] = defaultdict(list)
    accepted = (SymptomProposal.objects.filter(status=SymptomProposal.Status.ACCEPTED, category__in=categories)
                .order_by("symptom_key").values_list("symptom", "note_ids"))
    for symptom, ids in accepted:
        for note_id in ids or []:
            if note_id in note_ids:
                found[note_id].append(symptom)
    return found


@dataclass(frozen=True)
class ExamplePool:
    """The usable example notes of a category (planning.examples_group) and their stripped texts."""

    examples: list[ExampleNote]
    texts: frozenset[str]

    @classmethod
    def of(cls, examples: list[ExampleNote]) -> ExamplePool:
        return cls(examples, frozenset(example.text.strip() for example in examples))

    def draw(self, note: SourceNote, rng: random.Random) -> ExampleNote | None:
        """An example other than the note itself (nor one with the same text), drawn with the caller's RNG; None
        when there is none (the neutral template stands in, as in generation). Most notes are too short to be
        examples: only a note whose text is in the pool has to be taken out of it."""
        text = note.text.strip()
        others = ([example for example in self.examples if example.text.strip() != text] if text in self.texts
                  else self.examples)
        return rng.choice(others) if others else None


def _note_records(note: SourceNote, *, templates: list[tuple[PromptTemplate, list[str]]], symptoms: list[str],
                  examples: ExamplePool, disease_name: str, seed: int, skipped: Counter) -> list[InstructionRecord]:
    """The note's record with each (template, its prompt inputs); a variant whose prompt needs symptoms the note does
    not mention, or whose prompt would be too long, is skipped (counted by reason)."""
    records = []
    content = content_hash(note.category, note.text)
    for template, inputs in templates:
        if "symptoms" in inputs and not symptoms:
            skipped["no_symptoms"] += 1
            continue
        rng = random.Random(f"{seed}:{template.variant}:{content}")
        example_text = ""
        if "example" in inputs:
            example = examples.draw(note, rng)
            example_text = example.text if example else TEMPLATE_EXAMPLES.get(template.language,
                                                                              TEMPLATE_EXAMPLES["en"])
            skipped["template_example"] += example is None
        try:
            built = prompt_build_from_template(template, rng=rng, symptoms=symptoms, example=example_text,
                                               disease_name=disease_name, code=note.icd_code)
        except PromptTooLongError:
            skipped["prompt_too_long"] += 1
            continue
        records.append(InstructionRecord(instruction=built.system, input=built.user, output=note.text,
                                         category=note.category, variant=template.variant, note_id=note.note_id))
    return records


def _capped(records: list[InstructionRecord], cap: int | None, seed: int) -> list[InstructionRecord]:
    """At most cap records per category: its notes in a seeded order, each with all its records, the last one cut at
    the cap; the kept records in file order (by note, then variant)."""
    if cap is None:
        return records
    by_note: dict[int, list[InstructionRecord]] = defaultdict(list)
    for record in records:
        by_note[record.note_id].append(record)
    kept: set[tuple[int, str]] = set()
    by_category: dict[str, list[int]] = defaultdict(list)
    for note_id, note_records in by_note.items():
        by_category[note_records[0].category].append(note_id)
    for category, note_ids in by_category.items():
        random.Random(f"{seed}:cap:{category}").shuffle(note_ids)
        room = cap
        for note_id in note_ids:
            for record in by_note[note_id][:room]:
                kept.add((record.note_id, record.variant))
            room -= min(room, len(by_note[note_id]))
            if not room:
                break
    return [record for record in records if (record.note_id, record.variant) in kept]


def _validation_notes(note_ids: list[int], share: float, seed: int) -> set[int]:
    """A seeded share of the notes (at least one when share > 0, never all of them), held out with all their
    records."""
    if share <= 0 or len(note_ids) < 2:
        return set()
    count = min(len(note_ids) - 1, max(1, round(share * len(note_ids))))
    ordered = sorted(note_ids)
    random.Random(f"{seed}:validation").shuffle(ordered)
    return set(ordered[:count])


def _counts(records: list[InstructionRecord]) -> dict[str, dict[str, dict[str, int]]]:
    by: dict[str, dict[str, dict[str, int]]] = {"by_category": {}, "by_variant": {}}
    for record in records:
        for kind, key in (("by_category", record.category), ("by_variant", record.variant)):
            by[kind].setdefault(key, dict.fromkeys(PARTS, 0))[record.part] += 1
    return {kind: dict(sorted(rows.items())) for kind, rows in by.items()}


def instruction_set_compute(request: InstructionSetRequest, *, data: SamplingData | None = None,
                            progress: Progress | None = None) -> InstructionSetPlan:
    """Every record of the set the request describes, over the current graph and the real notes of the split, in
    file order (category, note id, variant), with counts, skipped records by reason and provenance. Writes nothing:
    a preview shows its counts, a build writes its records. progress(done, total) in notes."""
    started = time.perf_counter()
    report = progress or (lambda done, total: None)
    split = split_check(request.split, source_dataset=request.source_dataset)
    templates = templates_resolve(request.templates)
    data = data or sampling_data_load(get_graph_store())
    rows = _split_notes(split, request.source_dataset).order_by("icd_category", "id").values_list(
        "id", "icd_code", "icd_category", "text")
    notes = [SourceNote(note_id, code, category, text) for note_id, code, category, text in rows.iterator()]
    examples = examples_group(((n.note_id, n.category, n.text) for n in notes), min_words=DEFAULT_MIN_WORDS)
    categories = {note.category for note in notes}
    category_symptoms = {category: _category_symptoms(data, category) for category in categories}
    lexicon = symptom_lexicon(frozenset(name for names in category_symptoms.values() for name in names))
    proposals = accepted_proposals({note.note_id for note in notes}, categories)
    pools = {category: ExamplePool.of(examples.get(category, [])) for category in categories}
    with_inputs = [(template, prompt_inputs(template)) for template in templates]

    skipped: Counter[str] = Counter()
    symptom_sources: Counter[str] = Counter()
    records: list[InstructionRecord] = []
    total = len(notes)
    for done, note in enumerate(notes, start=1):
        found = [name for name in lexicon.mentioned(note.text) if name in category_symptoms[note.category]]
        symptom_sources["lexicon"] += len(found)
        for name in proposals.get(note.note_id, []):
            if name not in found:
                found.append(name)
                symptom_sources["llm_accepted"] += 1
        entry = data.categories.get(note.category)
        records += _note_records(note, templates=with_inputs, symptoms=found, examples=pools[note.category],
                                 disease_name=entry.name if entry else note.category, seed=request.seed,
                                 skipped=skipped)
        if done % 200 == 0 or done == total:
            report(done, total)

    unique, seen = [], set()
    for record in records:
        if record.key() in seen:
            skipped["duplicate"] += 1
            continue
        seen.add(record.key())
        unique.append(record)
    capped = _capped(unique, request.cap_per_category, request.seed)
    skipped["over_cap"] = len(unique) - len(capped)
    note_ids = sorted({record.note_id for record in capped})
    held_out = _validation_notes(note_ids, request.validation_share, request.seed)
    final = [dataclasses.replace(record, part="validation") if record.note_id in held_out else record
             for record in capped]
    provenance = {
        "graph_version": data.version or "",
        "templates": [{"id": t.pk, "name": t.name, "version": t.version, "variant": t.variant,
                       "language": t.language} for t in templates],
        "split": split,
        "source_dataset": request.source_dataset,
        "source_datasets": list(_split_notes(split, request.source_dataset).order_by("source_dataset")
                                .values_list("source_dataset", flat=True).distinct()),
        "source_notes": len(note_ids),
        "notes_in_split": total,
        "validation_notes": len(held_out),
        "seed": request.seed,
        "cap_per_category": request.cap_per_category,
        "validation_share": request.validation_share,
        "example_min_words": DEFAULT_MIN_WORDS,
        "symptoms_found": dict(symptom_sources),
        "skipped": {key: skipped[key] for key in ("no_symptoms", "prompt_too_long", "duplicate", "over_cap")},
        "template_examples": skipped["template_example"],
        "record_format": "alpaca: instruction = the template's system text, input = its user text, output = the note",
        "prompt_style": templates_prompt_style(templates),
        "compute_seconds": round(time.perf_counter() - started, 2),
    }
    return InstructionSetPlan(records=final, counts=_counts(final), skipped=provenance["skipped"],
                              provenance=provenance, note_ids=note_ids, templates=templates)


def instruction_set_preview(request: InstructionSetRequest) -> InstructionSetPlan:
    """The set a build of this request would write, counted (the same computation as the build, nothing written)."""
    return instruction_set_compute(request)


# --- Files ----------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WrittenFile:
    path: str  # relative to the version folder, posix
    bytes: int
    sha256: str


def instruction_set_folder(instruction_set: InstructionSet) -> Path:
    return Path(settings.INSTRUCTION_SETS_DIR) / instruction_set.name / f"v{instruction_set.version}"


def _jsonl_line(record: InstructionRecord) -> str:
    line = json.dumps(record.as_dict(), ensure_ascii=False)
    return _JSONL_LINE_BREAKS.sub(lambda match: f"\\u{ord(match[0]):04x}", line) + "\n"


def _file_entry(root: Path, path: str) -> WrittenFile:
    """Hash the file as it is on disk and fsync it, so the rename at the end publishes durable contents."""
    with (root / path).open("rb") as handle:
        digest = hashlib.file_digest(handle, "sha256").hexdigest()
        os.fsync(handle.fileno())
        size = os.fstat(handle.fileno()).st_size
    return WrittenFile(path=path, bytes=size, sha256=digest)


def _card(instruction_set: InstructionSet, plan: InstructionSetPlan, split_bytes: dict[str, int]) -> str:
    """The datasets folder's README.md: a YAML header `datasets` reads (both splits, features, row counts) and the
    set's provenance and counts in Markdown."""
    licences = {settings.OPEN_DATA_SOURCES.get(source) for source in plan.provenance["source_datasets"]}
    licence = licences.pop().lower() if len(licences) == 1 and None not in licences else "other"
    splits = [part for part in PARTS if split_bytes.get(part)]
    counts = {part: getattr(plan, f"n_{part}") for part in PARTS}
    header = {
        "license": licence,
        "language": sorted({t.language for t in plan.templates}),
        "task_categories": ["text-generation"],
        "tags": ["medical", "clinical-notes", "icd-10", "instruction-tuning", "alpaca"],
        "pretty_name": f"{instruction_set.name} v{instruction_set.version}",
        "configs": [{"config_name": "default", "default": True,
                     "data_files": [{"split": part, "path": f"data/{part}.parquet"} for part in splits]}],
        "dataset_info": {"config_name": "default",
                         "features": [{"name": f.name, "dtype": _FEATURE_DTYPES[f.type]} for f in _SCHEMA],
                         "splits": [{"name": part, "num_bytes": split_bytes[part], "num_examples": counts[part]}
                                    for part in splits]},
    }
    provenance = plan.provenance
    templates = "\n".join(f"- {t['variant']}: {t['name']} v{t['version']} (id {t['id']}, {t['language']})"
                          for t in provenance["templates"])
    categories = "\n".join(f"| {category} | {row['train']} | {row['validation']} |"
                           for category, row in plan.counts["by_category"].items())
    variants = "\n".join(f"| {variant} | {row['train']} | {row['validation']} |"
                         for variant, row in plan.counts["by_variant"].items())
    body = f"""# {instruction_set.name} (version {instruction_set.version})

Instruction data for fine-tuning (MedSyn, Alpaca fields), built by MedSyn Studio from real notes and the medical
knowledge graph. Each record asks for a clinical note in one of three prompt variants; the output is the real note.

```python
from datasets import load_dataset

sets = load_dataset("path/to/datasets")  # splits: {", ".join(splits)}
```

The same records are in `train.jsonl` beside this folder (one JSON object per line, the `part` field naming the split).
A local model is prompted with `### Задание: {{instruction}}\\n### Вход: {{input}}\\n### Ответ: `.

## Fields

| field | meaning |
|---|---|
| instruction | the prompt template's system text |
| input | the prompt template's user text, filled with the note's symptoms, example note, disease and code |
| output | the real note |
| category | ICD-10 category of the note |
| variant | prompt variant: symptoms_example, symptoms or code |
| note_id | the note's id in MedSyn Studio (all records of a note are in the same split) |
| part | train or validation |

## Provenance

| | value |
|---|---|
| source split | {provenance["split"]} {provenance["source_dataset"]} |
| source notes | {provenance["source_notes"]} (of {provenance["notes_in_split"]} in the split) |
| validation notes | {provenance["validation_notes"]} (share {provenance["validation_share"]}) |
| graph version | {provenance["graph_version"] or "-"} |
| seed | {provenance["seed"]} |
| cap per category | {provenance["cap_per_category"] or "none"} |
| skipped | {", ".join(f"{k}: {v}" for k, v in provenance["skipped"].items())} |

Prompt templates:

{templates}

## Records per prompt variant

| variant | train | validation |
|---|---|---|
{variants}

## Records per ICD-10 category

| category | train | validation |
|---|---|---|
{categories}
"""
    return "---\n" + yaml.safe_dump(header, allow_unicode=True, sort_keys=False, width=1000) + "---\n\n" + body


def _zip_folder(source: Path, target: Path) -> None:
    """The folder's files in a zip with fixed member times, in path order: the same folder, the same bytes."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(p for p in source.rglob("*") if p.is_file()):
            member = zipfile.ZipInfo(f"{source.name}/{path.relative_to(source).as_posix()}", date_time=_ZIP_TIME)
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = 0o644 << 16
            archive.writestr(member, path.read_bytes())


def instruction_set_files_write(instruction_set: InstructionSet, plan: InstructionSetPlan,
                                progress: Progress | None = None) -> list[WrittenFile]:
    """Write the version folder (module docstring) into a temporary sibling and rename it into place: an error
    leaves no partial folder. Returns every file written, SHA256SUMS last."""
    folder = instruction_set_folder(instruction_set)
    folder.parent.mkdir(parents=True, exist_ok=True)
    work = folder.parent / f".{folder.name}.partial-{uuid.uuid4().hex[:12]}"
    (work / DATASETS_DIR / "data").mkdir(parents=True)
    try:
        with (work / JSONL_NAME).open("w", encoding="utf-8", newline="\n") as jsonl:
            for done, record in enumerate(plan.records, start=1):
                jsonl.write(_jsonl_line(record))
                if progress and done % 2000 == 0:
                    progress(done, plan.total)
        split_bytes = {}
        for part in PARTS:
            rows = [record.as_dict() for record in plan.records if record.part == part]
            if rows:
                table = pa.Table.from_pylist(rows, schema=_SCHEMA)
                pq.write_table(table, work / DATASETS_DIR / "data" / f"{part}.parquet", compression="zstd")
                split_bytes[part] = table.nbytes
        (work / DATASETS_DIR / "README.md").write_text(_card(instruction_set, plan, split_bytes), encoding="utf-8")
        _zip_folder(work / DATASETS_DIR, work / DATASETS_ZIP)
        names = [JSONL_NAME, *sorted(p.relative_to(work).as_posix() for p in (work / DATASETS_DIR).rglob("*")
                                     if p.is_file()), DATASETS_ZIP]
        files = [_file_entry(work, name) for name in names]
        (work / SUMS_NAME).write_text("".join(f"{f.sha256}  {f.path}\n" for f in files), encoding="utf-8")
        files.append(_file_entry(work, SUMS_NAME))
        if folder.exists():  # left by a database that was reset: no set refers to it
            logger.warning("replacing an orphaned instruction set folder %s", folder)
            shutil.rmtree(folder)
        os.replace(work, folder)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    if progress:
        progress(plan.total, plan.total)
    return files


def instruction_set_file(instruction_set: InstructionSet, name: str) -> Path | None:
    """A downloadable file of a ready set (DOWNLOADS), or None (not ready, another name, or gone from disk)."""
    if instruction_set.status != InstructionSet.Status.READY or name not in DOWNLOADS:
        return None
    path = instruction_set_folder(instruction_set) / name
    return path if path.is_file() else None


# --- The build ------------------------------------------------------------------------------------------------------

def _name_lock(name: str) -> None:
    """Builds of one name take turns from here to their commit, so each reads the version the previous one
    committed (the first version of a name has no row to lock)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"instruction_set:{name}"])


@transaction.atomic
def do_build_instruction_set(*, request: InstructionSetRequest, actor: AbstractBaseUser | None,
                             enqueue: bool = True) -> InstructionSet:
    """Reserve the next version of the named set (status building) and queue its build on the default queue once
    committed (a build of RuMedTop3 train takes 6-9 s in a fresh process, too long for a request). ValidationError,
    and nothing stored, when the request is refused: no name, an evaluation split or one without real notes,
    templates that are not one per variant. The templates are resolved now: the build uses the versions current at
    the request. enqueue=False: the caller runs instruction_set_build_run itself (the command does)."""
    if not request.name:
        raise ValidationError({"name": [_("This field is required.")]})
    split = split_check(request.split, source_dataset=request.source_dataset)
    templates = templates_resolve(request.templates)
    parameters = {**request.as_parameters(), "split": split, "templates": [template.pk for template in templates]}
    _name_lock(request.name)
    latest = InstructionSet.objects.filter(name=request.name).aggregate(v=Max("version"))["v"] or 0
    creator = actor if actor is not None and actor.is_authenticated else None
    instruction_set = InstructionSet.objects.create(
        name=request.name, version=latest + 1, status=InstructionSet.Status.BUILDING, split=split, seed=request.seed,
        provenance={"request": parameters}, created_by=creator)
    build = InstructionSetBuild.objects.create(instruction_set=instruction_set, parameters=parameters,
                                               created_by=creator,
                                               progress_total=_split_notes(split, request.source_dataset).count())
    audit_write(actor=creator, action=AuditEvent.BUILD_INSTRUCTION_SET, obj=instruction_set,
                to_state=instruction_set.status, extra={"version": instruction_set.version, "parameters": parameters})
    if enqueue:
        job_send_on_commit(build)
    return instruction_set


@transaction.atomic
def _set_finish(instruction_set: InstructionSet, plan: InstructionSetPlan, files: list[WrittenFile]) -> None:
    """Building -> ready with everything the build found, in one transaction: after it the set never changes."""
    locked = InstructionSet.objects.select_for_update().get(pk=instruction_set.pk)
    if locked.status != InstructionSet.Status.BUILDING:
        return
    through = InstructionSet.source_notes.through
    through.objects.bulk_create((through(instructionset_id=locked.pk, note_id=note_id) for note_id in plan.note_ids),
                                batch_size=5000)
    jsonl = next(f for f in files if f.path == JSONL_NAME)
    locked.status = InstructionSet.Status.READY
    locked.graph_version = plan.provenance["graph_version"]
    locked.provenance = {**plan.provenance, "request": locked.provenance.get("request", {}),
                         "files": [dataclasses.asdict(f) for f in files]}
    locked.counts, locked.n_train, locked.n_validation = plan.counts, plan.n_train, plan.n_validation
    locked.file_path, locked.sha256 = str(instruction_set_folder(locked) / JSONL_NAME), jsonl.sha256
    locked.save(update_fields=["status", "graph_version", "provenance", "counts", "n_train", "n_validation",
                               "file_path", "sha256"])


def _build_request(parameters: dict[str, Any]) -> InstructionSetRequest:
    names = {spec.name for spec in dataclasses.fields(InstructionSetRequest)}
    values = {key: value for key, value in parameters.items() if key in names}
    return InstructionSetRequest(**{**values, "templates": tuple(values.get("templates") or ())})


def instruction_set_build_run(build_id: int, on_progress: Progress | None = None) -> None:
    """Compute the set's records (progress in notes, also passed to on_progress: a command's bar), write its folder,
    then mark the set ready with its counts, provenance, source notes and the JSONL's SHA-256, and the build done.
    A refusal found now (the split lost its notes, no record can be built) or an error marks both failed with the
    reason, and leaves no folder. A redelivered build runs again from the start (the folder is written aside and
    swapped in); a finished one is left alone."""
    build = InstructionSetBuild.objects.select_related("instruction_set").get(pk=build_id)
    if not build.mark_running():
        return
    instruction_set = build.instruction_set
    try:
        if instruction_set.status == InstructionSet.Status.BUILDING:
            with ProgressRecorder(build, also=on_progress) as progress:
                plan = instruction_set_compute(_build_request(build.parameters), progress=progress)
                if not plan.records:
                    raise ValidationError(_("No record can be built from the split %(split)s: its notes mention no "
                                            "symptom the graph links to their category and no prompt could be "
                                            "rendered.") % {"split": instruction_set.split})
                progress.write(step=gettext_noop("Writing the files"))
                files = instruction_set_files_write(instruction_set, plan)
            _set_finish(instruction_set, plan, files)
    except Exception as error:
        refused = isinstance(error, ValidationError)
        message = " ".join(error.messages) if refused else f"{type(error).__name__}: {error}"
        InstructionSet.objects.filter(pk=instruction_set.pk, status=InstructionSet.Status.BUILDING).update(
            status=InstructionSet.Status.FAILED, error=message)
        build.mark_finished(JobStatus.FAILED, error=message)
        if not refused:
            raise
        return
    build.mark_finished(JobStatus.DONE, step="", progress_done=F("progress_total"))
