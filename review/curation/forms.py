from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from generation.models import PromptTemplate

from .models import ReviewState


class CurationFilterForm(forms.Form):
    """The curation queue's filter and sort, from GET parameters (pages) or JSON (API); all optional."""

    FLAGS = [("", _("Any")), ("flagged", _("Flagged (near duplicate or memorised)")),
             ("duplicate", _("Near duplicate")), ("memorised", _("Memorised real note")),
             ("overridden", _("Flag overridden")), ("clean", _("Not flagged")),
             ("unchecked", _("Not yet scanned at this version (memorisation or near duplicates)")),
             ("releasable", _("Approved and releasable")), ("held_back", _("Approved but held back from releases"))]
    SORTS = [("id", _("Oldest first")), ("-id", _("Newest first")), ("code", _("ICD-10 code")),
             ("recall", _("Symptom recall, lowest first")), ("-recall", _("Symptom recall, highest first")),
             ("-memorisation", _("Memorisation, highest first")), ("-detectability", _("Detectability, highest first")),
             ("detectability", _("Detectability, lowest first"))]

    state = forms.ChoiceField(label=_("State"), required=False,
                              choices=[("", _("Any"))] + list(ReviewState.choices))
    code = forms.CharField(label=_("ICD-10 code (prefix)"), required=False, max_length=16)
    model = forms.CharField(label=_("Model"), required=False, max_length=100)
    variant = forms.ChoiceField(label=_("Prompt variant"), required=False,
                                choices=[("", _("Any"))] + list(PromptTemplate.Variant.choices))
    job = forms.IntegerField(label=_("Generation job"), required=False, min_value=1)
    check = forms.ChoiceField(label=_("Automatic checks"), required=False,
                              choices=[("", _("Any")), ("pass", _("Passed")), ("fail", _("Failed"))])
    recall_min = forms.FloatField(label=_("Symptom recall ≥"), required=False, min_value=0, max_value=1)
    recall_max = forms.FloatField(label=_("Symptom recall ≤"), required=False, min_value=0, max_value=1)
    detectability_min = forms.FloatField(label=_("Detectability ≥"), required=False, min_value=0, max_value=1,
                                         help_text=_("Share of physicians who judged the note synthetic."))
    detectability_max = forms.FloatField(label=_("Detectability ≤"), required=False, min_value=0, max_value=1)
    flag = forms.ChoiceField(label=_("Flags"), required=False, choices=FLAGS)
    sort = forms.ChoiceField(label=_("Sort"), required=False, choices=SORTS)

    FILTER_KEYS = ("state", "code", "model", "variant", "job", "check", "recall_min", "recall_max",
                   "detectability_min", "detectability_max", "flag")

    def filters(self) -> dict:
        """The cleaned, non-empty filters (JSON-serialisable): what a bulk action or a release records."""
        return {key: self.cleaned_data[key] for key in self.FILTER_KEYS
                if self.cleaned_data.get(key) not in (None, "")}


class CurationActionForm(forms.Form):
    reason = forms.CharField(label=_("Reason"), required=False, max_length=2000,
                             widget=forms.Textarea(attrs={"rows": 2}))


class NoteEditForm(forms.Form):
    text = forms.CharField(label=_("Text"), widget=forms.Textarea(attrs={"rows": 10}))
    reason = forms.CharField(label=_("Why this edit"), required=False, max_length=2000)


def filter_form_bound(data) -> CurationFilterForm:
    """The queue filter bound to request data; an invalid field is shown on the form and left out of the filter."""
    form = CurationFilterForm(data)
    form.is_valid()
    return form


def filter_form_filters(form: CurationFilterForm) -> dict:
    """The valid filters of a bound form (all of them when it is valid)."""
    return form.filters() if form.is_valid() else {k: v for k, v in form.cleaned_data.items()
                                                   if k in form.FILTER_KEYS and v not in (None, "")}
