from django import forms
from django.utils.translation import gettext_lazy as _

from .models import ImportJob


class ImportUploadForm(forms.Form):
    kind = forms.ChoiceField(label=_("What the file holds"), choices=ImportJob.Kind.choices)
    upload = forms.FileField(label=_("File"), help_text=_("JSONL of nodes and edges (see the format), or a CSV "
                                                          "with the header code,name_ru."))
