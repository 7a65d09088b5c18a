"""The new-job form (plan parameters, model and sampling parameters), the generated notes' filter and the note
import upload."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from medsyn_site.core.forms import AsciiDecimalField, AsciiFloatField, AsciiIntegerField, ascii_digits

from .jobs import PlanRequest, plan_request_from
from .models import Language, ModelConfig, NoteImportJob, PromptTemplate
from .planning import DEFAULT_MIN_WORDS, MAX_TASKS_PER_CATEGORY

SEPARATORS = re.compile(r"[\s,;]+")
BIGINT_MAX = 2**63 - 1  # a job id (PostgreSQL bigint)


def categories_split(raw: str) -> list[str]:
    """'J06, K29.7 I10' -> ['J06', 'K29.7', 'I10'] (plan_request_from checks them and cuts codes to categories)."""
    return [token for token in SEPARATORS.split(raw.strip()) if token]


def counts_parse(raw: str) -> dict[str, int]:
    """'J06=5, I10=2' -> {'J06': 5, 'I10': 2} (plan_request_from checks the categories and the counts)."""
    counts = {}
    for token in SEPARATORS.split(raw.strip()):
        if not token:
            continue
        key, _sep, value = token.partition("=")
        if not ascii_digits(value):  # int() would read '٣' as 3 and fail on '²'
            raise forms.ValidationError(_("Write counts as CODE=N, for example J06=5: %(token)s"),
                                        params={"token": token[:40]})
        # More digits than any allowed count: refused by plan_request_from without an int() of thousands of digits.
        counts[key] = int(value) if len(value) <= len(str(MAX_TASKS_PER_CATEGORY)) else MAX_TASKS_PER_CATEGORY + 1
    return counts


class JobForm(forms.Form):
    """The fields only read the text; every rule of a plan request is jobs.plan_request_from's, as for the API."""

    # plan_request_from's field names that this form shows under another field.
    PLAN_FIELDS = {"explicit_counts": "counts", "overrides": "counts"}

    categories = forms.CharField(required=False, label=_("Categories"),
                                 help_text=_("ICD-10 codes separated by commas; empty: all categories with examples."))
    budget = AsciiIntegerField(initial=10, label=_("Budget (tasks)"))
    allocation = forms.ChoiceField(choices=[("weighted", _("Weighted by w(C)")), ("uniform", _("Uniform")),
                                            ("explicit", _("Explicit counts"))], initial="weighted",
                                   label=_("Allocation"))
    counts = forms.CharField(required=False, label=_("Counts / overrides"),
                             help_text=_("CODE=N pairs: the counts for explicit allocation, overrides otherwise."))
    symptom_mode = forms.ChoiceField(choices=[("uniform", _("Uniform")), ("weighted", _("Weighted by frequency"))],
                                     initial="uniform", label=_("Symptom sampling"))
    variant = forms.ChoiceField(choices=PromptTemplate.Variant.choices, initial="symptoms_example",
                                label=_("Prompt variant"))
    language = forms.ChoiceField(choices=Language.choices, initial="ru", label=_("Language"))
    model_config = forms.ModelChoiceField(queryset=ModelConfig.objects.all(), label=_("Model"))
    temperature = AsciiFloatField(required=False, label=_("Temperature"))
    top_p = AsciiFloatField(required=False, label=_("Top p"))
    max_new_tokens = AsciiIntegerField(required=False, label=_("Max new tokens"))
    min_words = AsciiIntegerField(initial=DEFAULT_MIN_WORDS, label=_("Minimum words of an example"))
    seed = AsciiIntegerField(initial=17, label=_("Seed"))
    budget_cap = AsciiDecimalField(required=False, min_value=0, max_digits=12, decimal_places=6,
                                   label=_("Cost cap"))

    def clean_categories(self) -> list[str]:
        return categories_split(self.cleaned_data.get("categories") or "")

    def clean_counts(self) -> dict[str, int]:
        return counts_parse(self.cleaned_data.get("counts") or "")

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        counts = data.get("counts") or {}
        explicit = data.get("allocation") == "explicit"
        try:
            data["plan_request"] = plan_request_from({**data, "explicit_counts": counts if explicit else {},
                                                      "overrides": {} if explicit else counts})
        except ValidationError as error:
            for name, messages in error.message_dict.items():
                field = self.PLAN_FIELDS.get(name, name)
                if field not in self.fields:
                    field = None  # a rule on a field this form does not show
                if field not in self.errors:  # a field the form could not read says so already
                    self.add_error(field, messages)
        return data

    def plan_request(self) -> PlanRequest:
        return self.cleaned_data["plan_request"]


class NoteFilterForm(forms.Form):
    """The generated notes' filters, from the notes page's or the API's query string. CharField refuses a NUL
    (PostgreSQL text cannot hold one) and the job is a number in ASCII digits that fits its column."""

    code = forms.CharField(label=_("Code"), required=False, max_length=16)
    model = forms.CharField(label=_("Model"), required=False, max_length=100)
    variant = forms.ChoiceField(label=_("Variant"), required=False,
                                choices=[("", _("any"))] + list(PromptTemplate.Variant.choices))
    check = forms.ChoiceField(label=_("Checks"), required=False,
                              choices=[("", _("any")), ("pass", _("passed")), ("fail", _("failed"))])
    job = AsciiIntegerField(label=_("Job"), required=False, min_value=1, max_value=BIGINT_MAX)

    def filters(self) -> dict:
        """The valid, non-empty filters as selectors.synthetic_notes_filter takes them (an invalid one is left out:
        the page says so, the API answers 400 instead). Call it after is_valid()."""
        return {name: value for name, value in self.cleaned_data.items() if value not in (None, "")}


class NoteImportForm(forms.Form):
    kind = forms.ChoiceField(label=_("File type"), choices=NoteImportJob.Kind.choices)
    split = forms.ChoiceField(label=_("Split (real notes)"), choices=[("train", "train"), ("dev", "dev"),
                                                                      ("test", "test")], initial="train")
    upload = forms.FileField(label=_("File"))
