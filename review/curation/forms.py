"""Forms of curation: the queue's filter (shared by the queue, bulk actions and releases), note actions and the
number fields that read ASCII digits only."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from generation.models import PromptTemplate
from medsyn_site.core.forms import AsciiFloatField, AsciiIntegerField

from .models import ReviewState
from .selectors import TO_REVIEW

# What a posted page form carries besides its own fields.
FORM_EXTRA_KEYS = frozenset({"csrfmiddlewaretoken"})


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
                              choices=[("", _("Any")), (TO_REVIEW, _("To review (generated or pending review)"))]
                              + list(ReviewState.choices))
    code = forms.CharField(label=_("ICD-10 code (prefix)"), required=False, max_length=16)
    model = forms.CharField(label=_("Model"), required=False, max_length=100)
    variant = forms.ChoiceField(label=_("Prompt variant"), required=False,
                                choices=[("", _("Any"))] + list(PromptTemplate.Variant.choices))
    job = AsciiIntegerField(label=_("Generation job"), required=False, min_value=1)
    check = forms.ChoiceField(label=_("Automatic checks"), required=False,
                              choices=[("", _("Any")), ("pass", _("Passed")), ("fail", _("Failed"))])
    recall_min = AsciiFloatField(label=_("Symptom recall ≥"), required=False, min_value=0, max_value=1)
    recall_max = AsciiFloatField(label=_("Symptom recall ≤"), required=False, min_value=0, max_value=1)
    detectability_min = AsciiFloatField(label=_("Detectability ≥"), required=False, min_value=0, max_value=1,
                                         help_text=_("Share of physicians who judged the note synthetic."))
    detectability_max = AsciiFloatField(label=_("Detectability ≤"), required=False, min_value=0, max_value=1)
    flag = forms.ChoiceField(label=_("Flags"), required=False, choices=FLAGS)
    sort = forms.ChoiceField(label=_("Sort"), required=False, choices=SORTS)

    FILTER_KEYS = ("state", "code", "model", "variant", "job", "check", "recall_min", "recall_max",
                   "detectability_min", "detectability_max", "flag")

    def __init__(self, data: Any = None, *args: Any, known_keys: Iterable[str] | None = None, **kwargs: Any) -> None:
        """known_keys: every key the data may hold (fields and whatever else the request carries); any other key is
        a form error naming it. A filter that is ignored would widen a bulk action or a release to every note, so
        callers that act on the filter (bulk actions, releases) pass it; the queue's page does not."""
        super().__init__(data, *args, **kwargs)
        self.known_keys = None if known_keys is None else frozenset(known_keys)

    def clean(self) -> dict:
        data = super().clean()
        for name in self.fields:  # a JSON filter: a list or an object would be read as its repr
            if isinstance(self.data.get(name), list | dict):
                self.add_error(name, _("Expected a single value (a string or a number)."))
        if self.known_keys is not None and (unknown := sorted(str(key) for key in self.data
                                                             if key not in self.known_keys)):
            known = [name for name in self.fields if name in self.known_keys]
            raise ValidationError(_("Unknown filter key(s): %(unknown)s. Known filters: %(known)s."),
                                  code="unknown_filter",
                                  params={"unknown": ", ".join(unknown), "known": ", ".join(known)})
        return data

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


# The keys a bulk action's filter may hold: the queue's filter form as the page sends it (its sort too).
BULK_FILTER_KEYS = frozenset(CurationFilterForm.base_fields)
# The bulk form's own fields, posted with the queue's filter.
BULK_FORM_KEYS = BULK_FILTER_KEYS | FORM_EXTRA_KEYS | {"action", "reason", "expected"}


def filter_form_bound(data, *, known_keys: Iterable[str] | None = None) -> CurationFilterForm:
    """The queue filter bound to request data; an invalid field is shown on the form and left out of the filter.
    known_keys: as CurationFilterForm."""
    form = CurationFilterForm(data, known_keys=known_keys)
    form.is_valid()
    return form


def filter_form_filters(form: CurationFilterForm) -> dict:
    """The valid filters of a bound form (all of them when it is valid)."""
    return form.filters() if form.is_valid() else {k: v for k, v in form.cleaned_data.items()
                                                   if k in form.FILTER_KEYS and v not in (None, "")}
