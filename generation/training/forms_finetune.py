"""The new fine-tuning job form: base model, instruction set, the new model's name and the paper's LoRA settings
(FineTuneJob's defaults), every one editable. The fields only read the text; every rule is finetune.do_start_finetune's
(the model's validators and the checks of the base model, the set and the name), as for the API and the command."""

from __future__ import annotations

from django import forms
from django.utils.translation import gettext_lazy as _

from generation.models import ModelConfig
from medsyn_site.core.forms import AsciiFloatField, AsciiIntegerField

from .finetune import FINETUNE_PARAMETERS, finetune_defaults
from .models import InstructionSet

LABELS = {
    "lora_r": _("LoRA rank r"), "lora_alpha": _("LoRA alpha"), "lora_dropout": _("LoRA dropout"),
    "target_modules": _("Target modules"), "learning_rate": _("Learning rate"), "epochs": _("Epochs"),
    "batch_size": _("Batch (effective)"), "micro_batch_size": _("Micro-batch"),
    "max_length": _("Max length (tokens)"), "max_steps": _("Max steps"), "warmup_steps": _("Warm-up steps"),
    "checkpoint_every": _("Checkpoint every (steps)"), "eval_every": _("Validation every (steps)"),
    "seed": _("Seed"),
}
FLOATS = frozenset({"lora_dropout", "learning_rate", "epochs"})


class FineTuneForm(forms.Form):
    name = forms.CharField(label=_("Name of the new model"), max_length=100)
    base_config = forms.ModelChoiceField(
        queryset=ModelConfig.objects.filter(backend=ModelConfig.Backend.LOCAL, adapter_path=""),
        label=_("Base model"), help_text=_("A local model without an adapter."))
    instruction_set = forms.ModelChoiceField(queryset=InstructionSet.objects.filter(status=InstructionSet.Status.READY),
                                             label=_("Instruction set"))

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        defaults = finetune_defaults()
        for name in FINETUNE_PARAMETERS:
            if name == "target_modules":
                field = forms.CharField(initial=", ".join(defaults[name]), required=False,
                                        help_text=_("Comma-separated; empty: q_proj, k_proj, v_proj, o_proj. A model "
                                                    "without them gets its attention projections."))
            elif name in FLOATS:
                field = AsciiFloatField(initial=defaults[name])
            else:
                field = AsciiIntegerField(initial=defaults[name], required=name != "max_steps")
            field.label = LABELS[name]
            self.fields[name] = field
        self.fields["max_steps"].help_text = _("Stop after this many steps (a short run, e.g. on a CPU); empty: "
                                               "the epochs.")
        self.fields["batch_size"].help_text = _("Records per optimiser step: micro-batches with gradient "
                                                "accumulation (the paper: 256).")

    def parameters(self) -> dict:
        return {name: self.cleaned_data.get(name) for name in FINETUNE_PARAMETERS}
