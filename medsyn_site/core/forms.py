"""What every app's forms share: numbers read in ASCII digits only, and a bound form's errors in one line.

Python's int(), float() and Decimal() read every Unicode decimal digit ('٣' is 3, '１' is 1) and str.isdigit() takes
'²': a number written with anything but ASCII is refused, so the value acted on is the one a person reads (and a
crafted '²' is a 400, never a 500). AsciiIntegerSerializerField does the same for DRF serializers.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from rest_framework import serializers


def ascii_digits(value: str) -> bool:
    """Whether value is a non-negative whole number in the digits 0-9."""
    return value.isascii() and value.isdigit()


class AsciiNumberMixin:
    """A form number field that refuses a value written with anything but ASCII."""

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and not value.isascii():
            raise ValidationError(self.error_messages["invalid"], code="invalid")
        return super().to_python(value)


class AsciiIntegerField(AsciiNumberMixin, forms.IntegerField):
    pass


class AsciiFloatField(AsciiNumberMixin, forms.FloatField):
    pass


class AsciiDecimalField(AsciiNumberMixin, forms.DecimalField):
    pass


class AsciiIntegerSerializerField(serializers.IntegerField):
    """DRF's IntegerField reads a JSON string "٣" as 3: a string number must be in ASCII digits."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, str) and not data.strip().isascii():
            self.fail("invalid")
        return super().to_internal_value(data)


def form_errors_text(form: forms.Form) -> str:
    """A bound form's errors in one line ("Label: message ..."), for a page that shows them in one place."""
    parts = []
    for name, errors in form.errors.items():
        text = " ".join(str(error) for error in errors)
        parts.append(f"{form.fields[name].label}: {text}" if name in form.fields else text)
    return " ".join(parts)
