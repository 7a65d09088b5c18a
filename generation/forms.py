"""The new-job form (plan parameters, model and sampling parameters), the generated notes' filter and the note
import upload."""

from __future__ import annotations

import re
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from medsyn_site.core.forms import AsciiDecimalField, AsciiFloatField, AsciiIntegerField, ascii_digits
from medsyn_site.modelcache import EMBEDDED_MODELS

from .jobs import PlanRequest, plan_request_from
from .models import Language, ModelConfig, NoteImportJob, PromptTemplate
from .planning import DEFAULT_MIN_WORDS, MAX_TASKS_PER_CATEGORY
from .prompts import template_is_completion, template_name_default
from .selectors import prompt_template_current

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


def model_config_for_language(language: str) -> ModelConfig | None:
    """The model a new job in language gets unless one is chosen: the embedded model for it (Gemma 3 270M for
    Russian, SmolLM2 for English), else the first configuration that states it writes it, else one that states no
    language (a model before the template-filling baseline); None when no configuration writes it."""
    configs = list(ModelConfig.objects.order_by("name"))
    by_name = {config.name: config for config in configs}
    for embedded in EMBEDDED_MODELS:
        config = by_name.get(embedded.folder_name())
        if config is not None and language in config.languages:
            return config
    # A model before the template-filling baseline, which is there to be compared with, not to be the default.
    configs.sort(key=lambda config: config.backend == ModelConfig.Backend.TEMPLATE)
    stated = [config for config in configs if language in config.languages]
    return next(iter(stated or [config for config in configs if config.writes(language)]), None)


def model_and_template_check(*, model_config: ModelConfig | None, variant: str, language: str,
                             template: PromptTemplate | None = None) -> tuple[ModelConfig, PromptTemplate]:
    """The model and prompt template a new job runs with: the model (the language's default when none is given) must
    write the language; the template, the current default of the variant and language in the model's style (a
    completion template for a base model, the method's instructions for an instruct model) unless one is given, must
    be of that style, variant and language. The job form and the API both decide here. Raises ValidationError by
    field ("model_config", "prompt_template"), or with no field when the default template is missing."""
    languages = dict(Language.choices)
    language_name = languages.get(language, language)
    if model_config is None:
        model_config = model_config_for_language(language)
        if model_config is None:
            raise ValidationError({"model_config": _("No model configuration writes %(language)s; an admin can add "
                                                     "one.") % {"language": language_name}})
    if not model_config.writes(language):
        default = model_config_for_language(language)
        message = _("%(model)s does not write %(language)s (it writes: %(languages)s).") % {
            "model": model_config.name, "language": language_name, "languages": ", ".join(model_config.languages)}
        hint = (_("Choose %(default)s, which does.") % {"default": default.name} if default else
                _("No model configuration writes it; an admin can add one."))
        raise ValidationError({"model_config": f"{message} {hint}"})
    base = model_config.is_base_model
    if template is None:
        try:
            template = prompt_template_current(variant=variant, language=language,
                                               name=template_name_default(variant=variant, language=language,
                                                                          completion=base))
        except PromptTemplate.DoesNotExist:
            message = (_("No completion template for the variant %(variant)s in the language %(language)s: a base "
                         "model needs one (`manage.py generation_defaults` creates the defaults).") if base else
                       _("No prompt template for the variant %(variant)s in the language %(language)s."))
            raise ValidationError(message % {"variant": variant, "language": language}) from None
    if template_is_completion(template.name) != base:
        message = (_("%(model)s is a base model: it continues text and needs a completion template (a name ending in "
                     "-completion), not %(template)s.") if base else
                   _("%(model)s is an instruct model: it needs an instruction template, not the completion template "
                     "%(template)s."))
        raise ValidationError({"prompt_template": message % {"model": model_config.name, "template": template.name}})
    if (template.variant, template.language) != (variant, language):
        raise ValidationError({"prompt_template": _(
            "%(template)s is a template for %(its_variant)s in %(its_language)s, not %(variant)s in %(language)s.")
            % {"template": template.name, "its_variant": template.variant,
               "its_language": languages.get(template.language, template.language), "variant": variant,
               "language": language_name}})
    return model_config, template


class ModelConfigChoiceField(forms.ModelChoiceField):
    """Each model offered with the languages it writes, instruct, base or no model (template filling), and its
    licence."""

    def label_from_instance(self, config: ModelConfig) -> str:
        if config.backend == ModelConfig.Backend.TEMPLATE:
            style = _("template filling, no model")
        else:
            style = _("base model") if config.is_base_model else _("instruct model")
        return _("%(name)s (%(languages)s; %(style)s; %(licence)s)") % {
            "name": config.name, "languages": ", ".join(config.languages) or _("languages not stated"),
            "style": style, "licence": config.licence or _("licence not stated")}


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
    model_config = ModelConfigChoiceField(
        queryset=ModelConfig.objects.order_by("name"), label=_("Model"),
        help_text=_("A model that writes the job's language; a base model gets the completion template of the "
                    "variant, an instruct model its instructions."))
    temperature = AsciiFloatField(required=False, label=_("Temperature"))
    top_p = AsciiFloatField(required=False, label=_("Top p"))
    max_new_tokens = AsciiIntegerField(required=False, label=_("Max new tokens"))
    min_words = AsciiIntegerField(initial=DEFAULT_MIN_WORDS, label=_("Minimum words of an example"))
    seed = AsciiIntegerField(initial=17, label=_("Seed"))
    budget_cap = AsciiDecimalField(required=False, min_value=0, max_digits=12, decimal_places=6,
                                   label=_("Cost cap"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """A model offered first that does not write the initial language gives way to that language's default."""
        super().__init__(*args, **kwargs)
        language = self.initial.get("language", self.fields["language"].initial)
        offered = self.initial.get("model_config")
        if not isinstance(offered, ModelConfig) or not offered.writes(language):
            self.initial["model_config"] = model_config_for_language(language) or offered

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
        if all(data.get(name) for name in ("model_config", "variant", "language")):
            try:
                _model, data["prompt_template"] = model_and_template_check(
                    model_config=data["model_config"], variant=data["variant"], language=data["language"])
            except ValidationError as error:
                if not hasattr(error, "error_dict"):
                    self.add_error(None, error)
                else:
                    for name, messages in error.message_dict.items():
                        self.add_error(name if name in self.fields else None, messages)
        return data

    def prompt_template(self) -> PromptTemplate:
        """The template the job runs with (model_and_template_check); call it after is_valid()."""
        return self.cleaned_data["prompt_template"]

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
