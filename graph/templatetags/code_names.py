"""`{{ value|code_name }}`: an ICD-10 code's name in the interface language (graph.names.code_display_name).

value is a code ("J06"), a graph row (a dict with key, name and name_ru) or an object with those attributes
(CodeDetail, a stats row). The optional argument is an English name already at hand, shown when no Russian one is
to be shown: `{{ item.diagnosis_code|code_name:item.diagnosis_name }}`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django import template

from graph.names import code_display_name

register = template.Library()


@register.filter
def code_name(value: Any, name: str | None = None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return code_display_name(value, name=name or None)
    field = value.get if isinstance(value, Mapping) else (lambda attribute: getattr(value, attribute, None))
    return code_display_name(field("key") or "", name=name or field("name"), name_ru=field("name_ru"))
