"""Forms of the utility pages: a new evaluation and an evaluation set's upload. They read the types; every rule is
services.do_start_utility_evaluation's (the API and the command meet the same)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from medsyn_site.core.forms import AsciiFloatField, AsciiIntegerField

from .classifiers import CLASSIFIERS
from .evaluation import GRIDS, Grid
from .models import MAX_BOOTSTRAP, MAX_SEEDS, PLAN_DEFAULTS, EvaluationSet, UtilityEvaluation
from .selectors import evaluation_sets_list, real_splits, releases_sealed


def grid_description(grid: Grid) -> str:
    """"paper: real 50, 75, 100 % × synthetic +0, 25, 50, 100 %; synthetic only, upsampling, out of training set"."""
    extras = [label for wanted, label in ((grid.synthetic_only, _("synthetic only")),
                                          (grid.upsampling, _("upsampling")),
                                          (grid.out_of_training, _("out of training set"))) if wanted]
    text = _("%(name)s: real %(real)s %% × synthetic +%(synthetic)s %%") % {
        "name": grid.name, "real": ", ".join(f"{100 * share:g}" for share in grid.real_fractions),
        "synthetic": ", ".join(f"{100 * share:g}" for share in sorted({0.0, *grid.synthetic_fractions}))}
    return f"{text}; {', '.join(extras)}" if extras else text


class UtilityEvaluationForm(forms.Form):
    real_split = forms.ChoiceField(label=gettext_lazy("Real training notes (split)"))
    synthetic = forms.ChoiceField(label=gettext_lazy("Synthetic notes"), choices=UtilityEvaluation.Synthetic.choices,
                                  initial=UtilityEvaluation.Synthetic.NONE)
    release = forms.ModelChoiceField(label=gettext_lazy("Release"), queryset=releases_sealed(), required=False,
                                     help_text=gettext_lazy("Its synthetic notes (its real notes are left out)."))
    approved_code = forms.CharField(label=gettext_lazy("Approved notes: ICD-10 code (prefix)"), required=False,
                                    max_length=16)
    approved_model = forms.CharField(label=gettext_lazy("Approved notes: generation model"), required=False,
                                     max_length=100)
    approved_job = AsciiIntegerField(label=gettext_lazy("Approved notes: generation job"), required=False,
                                     min_value=1)
    evaluation = forms.ChoiceField(label=gettext_lazy("Evaluation set"), help_text=gettext_lazy(
        "Real notes of another split, or an uploaded RuMedTop3 file. A set the training notes overlap is refused."))
    classifier = forms.ChoiceField(label=gettext_lazy("Classifier"), initial=PLAN_DEFAULTS["classifier"])
    grid = forms.ChoiceField(label=gettext_lazy("Grid"), initial=PLAN_DEFAULTS["grid"])
    seeds = AsciiIntegerField(label=gettext_lazy("Seeds"), min_value=1, max_value=MAX_SEEDS,
                              initial=PLAN_DEFAULTS["seeds"],
                              help_text=gettext_lazy("Subsampling seeds 0 … N-1; each cell's figures are their mean."))
    upsample_to = AsciiIntegerField(label=gettext_lazy("Upsample to"), min_value=1,
                                    initial=PLAN_DEFAULTS["upsample_to"], help_text=gettext_lazy(
                                        "Upsampling tops up each code with fewer real training notes to this many."))
    held_out_codes = forms.CharField(label=gettext_lazy("Held-out codes"), required=False, max_length=2000,
                                     help_text=gettext_lazy("Comma-separated ICD-10 categories learned from synthetic "
                                                            "notes only; empty: drawn with the first seed."))
    held_out_count = AsciiIntegerField(label=gettext_lazy("Held-out codes to draw"), min_value=1, max_value=100,
                                       initial=PLAN_DEFAULTS["held_out_count"])
    bootstrap = AsciiIntegerField(label=gettext_lazy("Bootstrap resamples"), min_value=100, max_value=MAX_BOOTSTRAP,
                                  initial=PLAN_DEFAULTS["bootstrap"])
    max_overlap = AsciiFloatField(label=gettext_lazy("Largest overlap allowed"), min_value=0, max_value=0.99,
                                  initial=PLAN_DEFAULTS["max_overlap"], help_text=gettext_lazy(
                                      "Share of evaluation notes with a copy among the real training notes above "
                                      "which the run is refused (0.01: 1 %)."))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        splits = real_splits()
        self.fields["real_split"].choices = [
            (row["split"], _("%(split)s (%(notes)d notes)") % row) for row in splits]
        self.fields["evaluation"].choices = [
            (_("Splits of real notes"), [(f"split:{row['split']}", _("%(split)s (%(notes)d notes)") % row)
                                         for row in splits]),
            (_("Uploaded evaluation sets"), [
                (f"set:{item.pk}", _("%(name)s (%(notes)d notes, %(codes)d codes)") % {
                    "name": item.name, "notes": item.note_count, "codes": item.code_count})
                for item in evaluation_sets_list()]),
        ]
        self.fields["classifier"].choices = [(name, f"{name}: {spec.description}")
                                             for name, spec in CLASSIFIERS.items()]
        self.fields["grid"].choices = [(name, grid_description(grid)) for name, grid in GRIDS.items()]
        names = {row["split"] for row in splits}
        self.fields["real_split"].initial = "train" if "train" in names else None
        self.fields["evaluation"].initial = next((f"split:{name}" for name in ("dev", "test") if name in names), None)

    NOTES_FIELDS = ("real_split", "synthetic", "release", "approved_code", "approved_model", "approved_job",
                    "evaluation")

    def notes_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.NOTES_FIELDS]

    def plan_fields(self) -> list[forms.BoundField]:
        return [self[name] for name in self.fields if name not in self.NOTES_FIELDS]

    def start_arguments(self) -> dict[str, Any]:
        """The cleaned data as do_start_utility_evaluation's arguments (call after is_valid())."""
        data = self.cleaned_data
        kind, _sep, value = data["evaluation"].partition(":")
        filters = {key: data[f"approved_{key}"] for key in ("code", "model", "job")
                   if data.get(f"approved_{key}") not in (None, "")}
        return {
            "real_split": data["real_split"], "synthetic": data["synthetic"], "release": data["release"],
            "approved_filters": filters, "evaluation_split": value if kind == "split" else "",
            "evaluation_set": EvaluationSet.objects.filter(pk=int(value)).first() if kind == "set" else None,
            "classifier": data["classifier"], "grid": data["grid"], "seeds": data["seeds"],
            "upsample_to": data["upsample_to"], "held_out_codes": data["held_out_codes"],
            "held_out_count": data["held_out_count"], "bootstrap": data["bootstrap"],
            "max_overlap": data["max_overlap"],
        }


class EvaluationSetUploadForm(forms.Form):
    name = forms.CharField(label=gettext_lazy("Name"), max_length=100)
    file = forms.FileField(label=gettext_lazy("RuMedTop3 jsonl file"), help_text=gettext_lazy(
        "One JSON object a line with idx, symptoms and code (an ICD-10 code), UTF-8; imported all or nothing."))
