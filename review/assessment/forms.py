from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from .models import Study


class StudyCreateForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=200)
    instructions = forms.CharField(label=_("Instructions for physicians"), widget=forms.Textarea(attrs={"rows": 3}),
                                   required=False)
    overlap_k = forms.IntegerField(label=_("Ratings per note (k)"), min_value=1, max_value=50, initial=3)
    n_per_origin = forms.IntegerField(label=_("Notes per origin (N real + N synthetic)"), min_value=1,
                                      max_value=100000, initial=50)
    seed = forms.IntegerField(label=_("Random seed"), initial=17)
    models = forms.CharField(label=_("Only synthetic notes of these models (comma-separated, optional)"),
                             required=False)
    variants = forms.CharField(label=_("Only these prompt variants (comma-separated, optional)"), required=False)
    jobs = forms.CharField(label=_("Only these generation job ids (comma-separated, optional)"), required=False)
    include_failed_checks = forms.BooleanField(
        label=_("Also take synthetic notes that failed their automatic checks or are flagged by a curation scan"),
        required=False, initial=False,
        help_text=_("Off by default: such notes are easy to spot and would make the study measure the checks."))

    def clean_jobs(self) -> tuple[int, ...]:
        try:
            return tuple(int(v) for v in self.split(self.cleaned_data["jobs"]))
        except ValueError:
            raise forms.ValidationError(_("Job ids are whole numbers separated by commas.")) from None

    def clean_name(self) -> str:
        name = self.cleaned_data["name"].strip()
        if Study.objects.filter(name=name).exists():
            raise forms.ValidationError(_("A study with this name exists."))
        return name

    @staticmethod
    def split(value: str) -> tuple[str, ...]:
        return tuple(v.strip() for v in value.split(",") if v.strip())
