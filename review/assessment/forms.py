from __future__ import annotations

from django import forms
from django.http import QueryDict
from django.utils.translation import gettext_lazy as _

from .models import Study
from .services import LABEL_MAX, question_key_check, question_key_duplicate


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


# --- the question-set editor ------------------------------------------------------------------------------------

LIKERT_ROWS_MAX = 40  # rows read from one post; more is not a question set anyone fills in


class FixedQuestionsForm(forms.Form):
    """The questions every study asks: origin and confidence (always required) and the comment."""

    origin_label = forms.CharField(label=_("Origin question"), max_length=LABEL_MAX)
    confidence_label = forms.CharField(label=_("Confidence question"), max_length=LABEL_MAX)
    comment_label = forms.CharField(label=_("Comment field"), max_length=LABEL_MAX, required=False)
    comment_required = forms.BooleanField(label=_("A comment is required"), required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, prefix="fixed", **kwargs)
        for field in self.fields.values():
            field.widget.attrs["aria-label"] = field.label


class LikertQuestionForm(forms.Form):
    """One rating-scale question: its key (a form field name and an export column), its label, whether required."""

    key = forms.CharField(label=_("Key"), validators=[question_key_check])
    label = forms.CharField(label=_("Question"), max_length=LABEL_MAX)
    required = forms.BooleanField(label=_("Required"), required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.widget.attrs["aria-label"] = field.label
        self.fields["key"].widget.attrs.update(autocomplete="off", spellcheck="false", maxlength="40")


def _part(questions: dict, name: str) -> dict:
    """One part of a question set (origin, confidence, comment) as a dict, {} when missing or malformed."""
    part = questions.get(name) if isinstance(questions, dict) else None
    return part if isinstance(part, dict) else {}


class QuestionEditor:
    """A study's question set as fields: the fixed questions and a list of Likert questions, in order.

    Built from a question set (from_questions) or from the editor's post (from_post); questions() gives back the same
    JSON shape the JSON import takes (services.questions_validate), keeping whatever else the set held (the origin's
    choices, the confidence range, extra keys of a question)."""

    def __init__(self, fixed: FixedQuestionsForm, rows: list[LikertQuestionForm]) -> None:
        self.fixed, self.rows = fixed, rows

    @staticmethod
    def _row(index: int, **kwargs) -> LikertQuestionForm:
        return LikertQuestionForm(prefix=f"likert-{index}", **kwargs)

    @classmethod
    def from_questions(cls, questions: dict) -> QuestionEditor:
        fixed = FixedQuestionsForm(initial={
            "origin_label": _part(questions, "origin").get("label", ""),
            "confidence_label": _part(questions, "confidence").get("label", ""),
            "comment_label": _part(questions, "comment").get("label", ""),
            "comment_required": _part(questions, "comment").get("required", False)})
        likert = [q for q in questions.get("likert") or [] if isinstance(q, dict)]
        return cls(fixed, [cls._row(i, initial={"key": q.get("key", ""), "label": q.get("label", ""),
                                                "required": q.get("required", True)})
                           for i, q in enumerate(likert)])

    @classmethod
    def from_post(cls, data: QueryDict) -> QuestionEditor:
        try:
            count = min(int(data.get("likert-count", "0")), LIKERT_ROWS_MAX)
        except ValueError:
            count = 0
        return cls(FixedQuestionsForm(data), [cls._row(i, data=data) for i in range(max(count, 0))])

    def edited(self, edit: str) -> QuestionEditor:
        """The editor after one edit, not saved: "add" a row at the end, or "up-N", "down-N", "remove-N" (row N).
        The values typed so far are kept, unchecked."""
        fixed = FixedQuestionsForm(initial={name: self.fixed[name].value() for name in self.fixed.fields})
        rows = [{name: row[name].value() for name in row.fields} for row in self.rows]
        verb, _sep, number = edit.partition("-")
        index = int(number) if number.isdigit() else -1
        if verb == "add" and len(rows) < LIKERT_ROWS_MAX:
            rows.append({"key": "", "label": "", "required": True})
        elif verb == "remove" and 0 <= index < len(rows):
            rows.pop(index)
        elif verb in ("up", "down"):
            other = index - 1 if verb == "up" else index + 1
            if 0 <= index < len(rows) and 0 <= other < len(rows):
                rows[index], rows[other] = rows[other], rows[index]
        return QuestionEditor(fixed, [self._row(i, initial=row) for i, row in enumerate(rows)])

    def is_valid(self) -> bool:
        valid = all([self.fixed.is_valid(), *(row.is_valid() for row in self.rows)])
        seen: set[str] = set()
        for row in self.rows:
            key = row.cleaned_data.get("key")  # absent when the key itself was refused
            if key in seen:
                row.add_error("key", question_key_duplicate(key))
                valid = False
            elif key:
                seen.add(key)
        return valid

    @property
    def has_errors(self) -> bool:
        return self.fixed.is_bound and (bool(self.fixed.errors) or any(row.errors for row in self.rows))

    def questions(self, base: dict) -> dict:
        """The question set these fields make, on top of base (the study's current set). Call is_valid() first."""
        fixed = self.fixed.cleaned_data
        kept = {q.get("key"): q for q in base.get("likert") or [] if isinstance(q, dict)}
        likert = []
        for row in self.rows:
            data = row.cleaned_data
            question = {**kept.get(data["key"], {}), "key": data["key"], "label": data["label"]}
            question.pop("required", None)
            if not data["required"]:
                question["required"] = False  # absent means required, as in every set written before the flag
            likert.append(question)
        questions = {**base, "origin": {**_part(base, "origin"), "label": fixed["origin_label"]},
                     "confidence": {**_part(base, "confidence"), "label": fixed["confidence_label"]},
                     "likert": likert}
        if "comment" in base or fixed["comment_label"] or fixed["comment_required"]:
            comment = {**_part(base, "comment"), "label": fixed["comment_label"]}
            comment.pop("required", None)
            if fixed["comment_required"]:
                comment["required"] = True  # absent means optional
            questions["comment"] = comment
        return questions
