from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from generation.models import PromptTemplate, ReviewState

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


class CurationFilterForm(forms.Form):
    """The curation queue's filter and sort, from GET parameters (pages) or JSON (API); all optional."""

    FLAGS = [("", _("Any")), ("flagged", _("Flagged (near duplicate or memorised)")),
             ("duplicate", _("Near duplicate")), ("memorised", _("Memorised real note")),
             ("overridden", _("Flag overridden")), ("clean", _("Not flagged")),
             ("unchecked", _("Not yet checked for memorisation"))]
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


class ReleaseCreateForm(forms.Form):
    name = forms.SlugField(label=_("Name"), max_length=100, help_text=_("Letters, digits, - and _ (a folder name)."))
    description = forms.CharField(label=_("Description"), required=False, widget=forms.Textarea(attrs={"rows": 2}))
    licence = forms.ChoiceField(label=_("Licence"), choices=[
        ("mit", "MIT"), ("cc-by-4.0", "CC BY 4.0"), ("cc-by-sa-4.0", "CC BY-SA 4.0"), ("cc-by-nc-4.0", "CC BY-NC 4.0"),
        ("apache-2.0", "Apache 2.0"), ("other", _("Other"))], initial="mit")
    include_real = forms.BooleanField(label=_("Include real notes"), required=False,
                                      help_text=_("Real notes go into a release only when this is set and their "
                                                  "licence is given."))
    real_data_licence = forms.CharField(label=_("Licence of the real notes"), required=False, max_length=100)

    def clean(self) -> dict:
        data = super().clean()
        if data.get("include_real") and not (data.get("real_data_licence") or "").strip():
            self.add_error("real_data_licence", _("Give the licence of the real notes to include them."))
        return data
