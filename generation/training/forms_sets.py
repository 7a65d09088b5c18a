"""The new instruction set form: the fields only read the text; every rule is
instruction_sets.instruction_set_request_from's, as for the API and the command."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from generation.models import PromptTemplate
from medsyn_site.core.forms import AsciiFloatField, AsciiIntegerField

from .instruction_sets import (
    DEFAULT_VALIDATION_SHARE,
    VARIANTS,
    InstructionSetRequest,
    instruction_set_request_from,
    template_choices,
    templates_default,
    training_splits,
)


class TemplateChoiceField(forms.ModelChoiceField):
    def label_from_instance(self, template: PromptTemplate) -> str:
        current = _(" (current)") if template.is_current else ""
        return f"{template.name} v{template.version}{current}"


class InstructionSetForm(forms.Form):
    """name is required to build, not to preview (build=False)."""

    name = forms.CharField(label=_("Name"), max_length=100, required=False,
                           help_text=_("Letters, digits, hyphens and underscores; a name that exists gets its next "
                                       "version."))
    split = forms.CharField(label=_("Source split"), widget=forms.Select,
                            help_text=_("Real notes of this split; dev and test notes are kept for evaluation."))
    source_dataset = forms.CharField(label=_("Source data set"), required=False, widget=forms.Select)
    template_symptoms_example = TemplateChoiceField(queryset=template_choices("symptoms_example"),
                                                    label=_("Template prompt(S,E)"))
    template_symptoms = TemplateChoiceField(queryset=template_choices("symptoms"), label=_("Template prompt(S)"))
    template_code = TemplateChoiceField(queryset=template_choices("code"), label=_("Template prompt(code)"))
    cap_per_category = AsciiIntegerField(label=_("Cap per category (records)"), required=False, min_value=1,
                                         help_text=_("Empty: no cap."))
    validation_share = AsciiFloatField(label=_("Validation share (of notes)"), initial=DEFAULT_VALIDATION_SHARE)
    seed = AsciiIntegerField(label=_("Seed"), initial=17)

    def __init__(self, *args: Any, build: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.build = build
        splits = training_splits()
        names = sorted({row["split"] for row in splits})
        self.fields["split"].widget.choices = [
            (name, _("%(split)s (%(notes)d notes)") % {
                "split": name, "notes": sum(row["notes"] for row in splits if row["split"] == name)})
            for name in names]
        self.fields["split"].initial = "train" if "train" in names else (names[0] if names else "")
        self.fields["source_dataset"].widget.choices = [("", _("all"))] + [
            (dataset, dataset) for dataset in sorted({row["source_dataset"] for row in splits})]
        if not self.is_bound:
            try:
                for template in templates_default():
                    self.fields[f"template_{template.variant}"].initial = template.pk
            except ValidationError:
                pass  # the defaults are missing: the fields stay empty and say so when submitted

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        templates = [data.get(f"template_{variant}") for variant in VARIANTS]
        if not all(templates):
            return data
        try:
            data["request"] = instruction_set_request_from(
                {**data, "templates": [template.pk for template in templates]}, require_name=self.build)
        except ValidationError as error:
            for name, messages in error.message_dict.items():
                field = name if name in self.fields else None
                if field not in self.errors:
                    self.add_error(field, messages)
        return data

    def instruction_set_request(self) -> InstructionSetRequest:
        return self.cleaned_data["request"]
