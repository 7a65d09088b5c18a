"""The graph's schema: node labels, relationship types and the keys everything is merged on.

Every node has a `key` (the ICD-10 code, or a normalised name for symptoms, drugs and groups), a `name`
and a lowercased `search_text`. Every relationship has a `source`; HAS_SYMPTOM also a `count`.
Symptom edges start at ICD-10 Category nodes (RuMedTop3 labels notes with 3-character categories);
curated data may attach them to full Code nodes too, and sampling prefers those (see sampling.py).
"""

from __future__ import annotations

from django.utils.translation import gettext as _

from medsyn_site.core.textfile import CONTROL

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


KEY_MAX_LENGTH = 200  # no key is longer (the importers refuse longer ones)
QUERY_MAX_LENGTH = 200  # a search longer than this finds nothing a shorter one would not


def graph_value_problem(value: str, *, max_length: int = KEY_MAX_LENGTH) -> str | None:
    """Why a key or search text (from a URL, a query string or a file) must not reach the graph store, or None.

    A control character is never part of a key or a name, and a NUL cuts the query FalkorDB parses (its client
    writes parameters into the query text): the store would answer with a parse error."""
    if (found := CONTROL.search(value)) is not None:
        return _("it holds a control character (U+%(code)04X)") % {"code": ord(found.group())}
    if len(value) > max_length:
        return _("it is longer than %(max)d characters") % {"max": max_length}
    return None


def symptom_key(name: str) -> str:
    """Symptoms are keyed by their lowercased name with runs of spaces collapsed."""
    return " ".join(name.lower().replace("ё", "е").split())


def search_text(*parts: str | None) -> str:
    return " ".join(p for p in parts if p).lower().replace("ё", "е")


def schema_ensure(store) -> None:
    for label, prop in INDEXED_PROPERTIES:
        store.index_ensure(label, prop)
