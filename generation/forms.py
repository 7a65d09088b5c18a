"""The new-job form: plan parameters, model and sampling parameters."""

from __future__ import annotations

import re

from django import forms
from django.utils.translation import gettext_lazy as _

from .jobs import PlanRequest
from .models import Language, ModelConfig, NoteImportJob, PromptTemplate
from .planning import DEFAULT_MIN_WORDS

CATEGORY = re.compile(r"^[A-Z]\d{2}$")


def categories_parse(raw: str) -> list[str]:
    """'J06, K29.7 I10' -> ['I10', 'J06', 'K29']: codes cut to their category, duplicates dropped."""
    found = set()
    for token in re.split(r"[\s,;]+", raw.strip().upper()):
        if token:
            category = token[:3]
            if not CATEGORY.match(category):
                raise forms.ValidationError(_("Not an ICD-10 code: %(code)s"), params={"code": token})
            found.add(category)
    return sorted(found)


def counts_parse(raw: str) -> dict[str, int]:
    """'J06=5, I10=2' -> {'J06': 5, 'I10': 2}."""
    counts = {}
    for token in re.split(r"[\s,;]+", raw.strip().upper()):
        if not token:
            continue
        key, _sep, value = token.partition("=")
        if not CATEGORY.match(key[:3]) or not value.isdigit():
            raise forms.ValidationError(_("Write counts as CODE=N, for example J06=5: %(token)s"),
                                        params={"token": token})
        counts[key[:3]] = int(value)
    return counts


class JobForm(forms.Form):
    categories = forms.CharField(required=False, label=_("Categories"),
                                 help_text=_("ICD-10 codes separated by commas; empty: all categories with examples."))
    budget = forms.IntegerField(min_value=0, max_value=100_000, initial=10, label=_("Budget (tasks)"))
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
    temperature = forms.FloatField(required=False, min_value=0, max_value=2, label=_("Temperature"))
    top_p = forms.FloatField(required=False, min_value=0, max_value=1, label=_("Top p"))
    max_new_tokens = forms.IntegerField(required=False, min_value=1, max_value=8192, label=_("Max new tokens"))
    min_words = forms.IntegerField(min_value=1, initial=DEFAULT_MIN_WORDS, label=_("Minimum words of an example"))
    seed = forms.IntegerField(initial=17, label=_("Seed"))
    budget_cap = forms.DecimalField(required=False, min_value=0, max_digits=12, decimal_places=6,
                                    label=_("Cost cap"))

    def clean_categories(self) -> list[str]:
        return categories_parse(self.cleaned_data.get("categories") or "")

    def clean_counts(self) -> dict[str, int]:
        return counts_parse(self.cleaned_data.get("counts") or "")

    def plan_request(self) -> PlanRequest:
        data = self.cleaned_data
        explicit = data["allocation"] == "explicit"
        return PlanRequest(
            categories=data["categories"] or None, budget=data["budget"], allocation=data["allocation"],
            explicit_counts=data["counts"] if explicit else {}, overrides={} if explicit else data["counts"],
            symptom_mode=data["symptom_mode"], variant=data["variant"], language=data["language"], seed=data["seed"],
            min_words=data["min_words"], temperature=data["temperature"], top_p=data["top_p"],
            max_new_tokens=data["max_new_tokens"],
        )


class NoteImportForm(forms.Form):
    kind = forms.ChoiceField(label=_("File type"), choices=NoteImportJob.Kind.choices)
    split = forms.ChoiceField(label=_("Split (real notes)"), choices=[("train", "train"), ("dev", "dev"),
                                                                      ("test", "test")], initial="train")
    upload = forms.FileField(label=_("File"))
