"""The graph's schema: node labels, relationship types and the keys everything is merged on.

Every node has a `key` (the ICD-10 code, or a normalised name for symptoms, drugs and groups), a `name`
and a lowercased `search_text`. Every relationship has a `source`; HAS_SYMPTOM also a `count`.
Symptom edges start at ICD-10 Category nodes (RuMedTop3 labels notes with 3-character categories);
curated data may attach them to full Code nodes too, and sampling prefers those (see sampling.py).
"""

from __future__ import annotations

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


def symptom_key(name: str) -> str:
    """Symptoms are keyed by their lowercased name with runs of spaces collapsed."""
    return " ".join(name.lower().replace("ё", "е").split())


def search_text(*parts: str | None) -> str:
    return " ".join(p for p in parts if p).lower().replace("ё", "е")


def schema_ensure(store) -> None:
    for label, prop in INDEXED_PROPERTIES:
        store.index_ensure(label, prop)
