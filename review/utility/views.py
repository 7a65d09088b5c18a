"""HTML views (htmx) of utility evaluations: the list, the new-evaluation form (?release=<id> preselects a release),
an evaluation's page with its live progress and, once done, the heat map, the lift chart and the tables; cancel, run
again, downloads; evaluation sets with their upload form."""

from __future__ import annotations

import json

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from medsyn_site.access import permission_view
from medsyn_site.core.errors import InputError, StateConflict
from medsyn_site.core.progress import poll_response

from .forms import EvaluationSetUploadForm, UtilityEvaluationForm
from .metrics import METRICS
from .models import UTILITY_PERMISSION, EvaluationSet, UtilityEvaluation
from .results import (
    FULL_SYNTHETIC,
    cell_rows,
    chapter_rows,
    compared_cells,
    headline,
    heat_map,
    lift_chart,
    metric_names,
    metrics_csv,
    overlap_shown,
    per_code_csv,
    result_load,
    subset_tables,
)
from .selectors import evaluation_sets_list, releases_sealed, utility_command_line, utility_evaluations_list
from .services import (
    do_cancel_utility_evaluation,
    do_start_utility_evaluation,
    do_upload_evaluation_set,
    evaluation_parameters,
    evaluation_set_jsonl,
)

_utility = permission_view(f"medsyn_site.{UTILITY_PERMISSION}")
# Service fields that the form shows under another name.
_FORM_FIELD = {"evaluation_split": "evaluation", "evaluation_set": "evaluation"}


def _errors_to_form(form, error: ValidationError) -> None:
    if not hasattr(error, "error_dict"):
        form.add_error(None, error)
        return
    for field, field_errors in error.error_dict.items():
        name = _FORM_FIELD.get(field, field)
        form.add_error(name if name in form.fields else None, field_errors)


@_utility
def evaluations(request: HttpRequest) -> HttpResponse:
    page = Paginator(utility_evaluations_list(), 25).get_page(request.GET.get("page"))
    return render(request, "review/utility/evaluations.html", {"evaluations": page})


@_utility
def evaluation_new(request: HttpRequest) -> HttpResponse:
    """GET: the form (?release=<id>: that release's synthetic notes); POST: start the evaluation, open its page."""
    initial = {}
    release = request.GET.get("release", "")
    if release.isascii() and release.isdigit() and releases_sealed().filter(pk=int(release)).exists():
        initial = {"synthetic": UtilityEvaluation.Synthetic.RELEASE, "release": int(release)}
    form = UtilityEvaluationForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                evaluation = do_start_utility_evaluation(**form.start_arguments(), actor=request.user)
            except ValidationError as error:
                _errors_to_form(form, error)
            else:
                messages.success(request, _("Utility evaluation %(id)s started.") % {"id": evaluation.pk})
                return redirect("utility:evaluation", pk=evaluation.pk)
        status = 400
    return render(request, "review/utility/evaluation_new.html", {"form": form}, status=status)


def _choice(request: HttpRequest, name: str, allowed: list[str], default: str) -> str:
    value = request.GET.get(name, default)
    return value if value in allowed else default


def evaluation_context(request: HttpRequest, evaluation: UtilityEvaluation) -> dict:
    context = {"evaluation": evaluation, "command": utility_command_line(evaluation),
               "overlap": overlap_shown(evaluation.overlap)}
    if evaluation.status != "done" or not evaluation.result:
        return context
    result = result_load(evaluation.result)
    metric = _choice(request, "metric", list(METRICS), "accuracy")
    compared = compared_cells(result)
    cell = _choice(request, "cell", [item.key for item in compared], compared[0].key if compared else "")
    chapter_cells, chapters = chapter_rows(result)
    context.update({
        "result": result, "inputs": result.inputs, "metric": metric, "cell": cell,
        "metric_choices": list(metric_names().items()), "compared": compared,
        "heat_map": heat_map(result, metric), "lift_chart": lift_chart(result, cell, metric) if cell else None,
        "metric_labels": [metric_names()[name] for name in METRICS], "rows": cell_rows(result),
        "subsets": subset_tables(result), "chapter_cells": chapter_cells, "chapters": chapters,
        "headline": headline(result), "full_synthetic": FULL_SYNTHETIC,
        "classifier_json": json.dumps(result.inputs["classifier"], ensure_ascii=False, indent=1),
        "overlap_json": json.dumps(result.inputs["overlap"], ensure_ascii=False),
        "input_sets": [(_("Real training notes"), result.inputs["real"]),
                       (_("Evaluation set"), result.inputs["evaluation"]),
                       (_("Synthetic notes"), result.inputs["synthetic"])],
    })
    return context


@_utility
def evaluation(request: HttpRequest, pk: int) -> HttpResponse:
    item = get_object_or_404(utility_evaluations_list(), pk=pk)
    context = evaluation_context(request, item)
    if request.htmx:
        return poll_response(render(request, "review/utility/_evaluation_status.html", context),
                             finished=item.finished)
    return render(request, "review/utility/evaluation.html", context)


@require_POST
@_utility
def evaluation_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        do_cancel_utility_evaluation(evaluation=get_object_or_404(UtilityEvaluation, pk=pk), actor=request.user)
    except StateConflict as error:
        messages.error(request, " ".join(error.messages))
    return redirect("utility:evaluation", pk=pk)


@require_POST
@_utility
def evaluation_repeat(request: HttpRequest, pk: int) -> HttpResponse:
    """Start a new evaluation with the same inputs (after a cancel, a failure, or new notes in a split)."""
    try:
        repeated = do_start_utility_evaluation(
            **evaluation_parameters(get_object_or_404(UtilityEvaluation, pk=pk)), actor=request.user)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return redirect("utility:evaluation", pk=pk)
    messages.success(request, _("Utility evaluation %(id)s started.") % {"id": repeated.pk})
    return redirect("utility:evaluation", pk=repeated.pk)


def _result_of(pk: int) -> UtilityEvaluation:
    item = get_object_or_404(UtilityEvaluation, pk=pk)
    if item.status != "done" or not item.result:
        raise Http404(_("This evaluation has no result yet."))
    return item


def _attachment(content: str, filename: str, content_type: str) -> HttpResponse:
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@_utility
def evaluation_json(request: HttpRequest, pk: int) -> HttpResponse:
    item = _result_of(pk)
    return _attachment(json.dumps(item.result, ensure_ascii=False, indent=1) + "\n", f"utility-{pk}.json",
                       "application/json")


@_utility
def evaluation_csv(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    result = result_load(_result_of(pk).result)
    content = metrics_csv(result) if kind == "metrics" else per_code_csv(result)
    return _attachment(content, f"utility-{pk}-{kind}.csv", "text/csv; charset=utf-8")


@_utility
def evaluation_sets(request: HttpRequest) -> HttpResponse:
    """The uploaded evaluation sets and the upload form (a file with problems lists every bad line)."""
    form = EvaluationSetUploadForm(request.POST or None, request.FILES or None)
    problems, source, status = [], "", 200
    if request.method == "POST":
        if form.is_valid():
            try:
                uploaded = do_upload_evaluation_set(name=form.cleaned_data["name"], upload=form.cleaned_data["file"],
                                                    actor=request.user)
            except InputError as error:
                problems, source = error.report(), error.source
            except ValidationError as error:
                for field, field_errors in error.message_dict.items():
                    form.add_error(field if field in form.fields else None, field_errors)
            else:
                messages.success(request, _("Evaluation set %(name)s stored: %(notes)d notes, %(codes)d codes.") % {
                    "name": uploaded.name, "notes": uploaded.note_count, "codes": uploaded.code_count})
                return redirect("utility:sets")
        status = 400
    return render(request, "review/utility/evaluation_sets.html", {
        "form": form, "sets": evaluation_sets_list(), "problems": problems, "source": source}, status=status)


@_utility
def evaluation_set_download(request: HttpRequest, pk: int) -> StreamingHttpResponse:
    """The set's stored notes as RuMedTop3 jsonl (what `evaluate_utility --eval-file` reads as the same notes)."""
    item = get_object_or_404(EvaluationSet, pk=pk)
    response = StreamingHttpResponse(evaluation_set_jsonl(item), content_type="application/jsonl; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="evaluation-set-{item.pk}.jsonl"'
    return response
