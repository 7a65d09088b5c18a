"""The graph's schema: node labels, relationship types and the keys everything is merged on.

Every node has a `key` (the ICD-10 code, or a normalised name for symptoms, drugs and groups), a `name`
and a lowercased `search_text`. Every relationship has a `source`; HAS_SYMPTOM also a `count`.
Symptom edges start at ICD-10 Category nodes (RuMedTop3 labels notes with 3-character categories);
curated data may attach them to full Code nodes too, and sampling prefers those (see sampling.py).
"""

from __future__ import annotations

import re

ICD_LABELS = ("Chapter", "Block", "Category", "Code")
NODE_LABELS = (*ICD_LABELS, "Symptom", "Drug", "PharmGroup")
VERSION_LABEL = "GraphVersion"

# relationship type -> allowed (from label, to label) pairs
REL_TYPES: dict[str, set[tuple[str, str]]] = {
    "CHILD_OF": {("Block", "Chapter"), ("Block", "Block"), ("Category", "Block"), ("Code", "Category"),
                 ("Code", "Code")},
    "HAS_SYMPTOM": {(label, "Symptom") for label in ICD_LABELS},
    "TREATED_BY": {(label, "Drug") for label in ICD_LABELS},
    "IN_GROUP": {("Drug", "PharmGroup")},
}

INDEXED_PROPERTIES = [(label, "key") for label in (*NODE_LABELS, VERSION_LABEL)] + [
    (label, "search_text") for label in NODE_LABELS
]

_BLOCK = re.compile(r"^[A-Z]\d\d-[A-Z]\d\d$")
_CATEGORY = re.compile(r"^[A-Z]\d\d$")
_CODE = re.compile(r"^[A-Z]\d\d\.[0-9A-Z]{1,4}$")
_CHAPTER = re.compile(r"^[IVXLC]+$")


def icd_label_for_key(key: str) -> str | None:
    """The ICD-10 label a code has, from its shape alone (no graph lookup)."""
    if _CATEGORY.match(key):
        return "Category"
    if _CODE.match(key):
        return "Code"
    if _BLOCK.match(key):
        return "Block"
    if _CHAPTER.match(key):
        return "Chapter"
    return None


def symptom_key(name: str) -> str:
    """Symptoms are keyed by their lowercased name with runs of spaces collapsed."""
    return " ".join(name.lower().replace("ё", "е").split())


def search_text(*parts: str | None) -> str:
    return " ".join(p for p in parts if p).lower().replace("ё", "е")


def schema_ensure(store) -> None:
    for label, prop in INDEXED_PROPERTIES:
        store.index_ensure(label, prop)
