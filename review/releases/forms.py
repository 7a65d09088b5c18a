from __future__ import annotations

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from medsyn_site.core.forms import AsciiIntegerField
from review.curation.forms import FORM_EXTRA_KEYS, CurationFilterForm

from .models import Release
from .selectors import releases_other_than

# Hugging Face licence ids a release can carry (the page form and the API offer the same).
LICENCES = [("mit", "MIT"), ("cc-by-4.0", "CC BY 4.0"), ("cc-by-sa-4.0", "CC BY-SA 4.0"),
            ("cc-by-nc-4.0", "CC BY-NC 4.0"), ("apache-2.0", "Apache 2.0"), ("other", _("Other"))]


class ReleaseCreateForm(forms.Form):
    name = forms.SlugField(label=_("Name"), max_length=100, help_text=_("Letters, digits, - and _ (a folder name)."))
    description = forms.CharField(label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    licence = forms.ChoiceField(label=_("Licence"), choices=LICENCES, initial="mit")
    include_real = forms.BooleanField(label=_("Include real notes"), required=False,
                                      help_text=_("Real notes go into a release only when this is set and their "
                                                  "licence is given."))
    real_data_licence = forms.CharField(label=_("Licence of the real notes"), required=False, max_length=100)

    def clean(self) -> dict:
        data = super().clean()
        if data.get("include_real") and not (data.get("real_data_licence") or "").strip():
            self.add_error("real_data_licence", _("Give the licence of the real notes to include them."))
        return data


# The keys a release's filter may hold: the queue's filters but the review state (a release takes approved notes).
RELEASE_FILTER_KEYS = frozenset(CurationFilterForm.FILTER_KEYS) - {"state"}
# The release page's form posts its own fields and "preview" with the filter.
RELEASE_FORM_KEYS = RELEASE_FILTER_KEYS | frozenset(ReleaseCreateForm.base_fields) | FORM_EXTRA_KEYS | {"preview"}


class ReleaseCompareForm(forms.Form):
    """The release to compare a release with (the release page's diff form, a plain GET form)."""

    other = AsciiIntegerField(label=_("Compare with"), min_value=1)

    def __init__(self, data, *, release: Release) -> None:
        super().__init__(data)
        self.release = release

    def clean_other(self) -> Release:
        other = releases_other_than(self.release).filter(pk=self.cleaned_data["other"]).first()
        if other is None:
            raise ValidationError(_("Choose another release to compare with."), code="invalid_choice")
        return other
