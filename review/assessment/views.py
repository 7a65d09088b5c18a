from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from functools import wraps

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from medsyn_site.access import permission_view
from medsyn_site.core.errors import InputError
from medsyn_site.core.textfile import json_error_words, text_decode

from .forms import QuestionEditor, StudyCreateForm
from .models import Rating, Study
from .results import (
    bar_chart_svg,
    rating_rows,
    ratings_csv,
    results_access_check,
    skip_rows,
    skips_csv,
    study_results,
)
from .selectors import (
    rater_listed_for,
    rater_progress,
    ratings_by_rater,
    studies_listed,
    studies_open_for_rater,
    study_pool_summary,
    study_progress,
)
from .services import (
    StudyStateError,
    SyntheticFilter,
    assignment_next,
    do_close_study,
    do_open_study,
    do_set_up_study,
    do_skip_item,
    do_submit_rating,
    do_update_study_questions,
    rater_blind_check,
)

SCALE = range(1, 6)
_manage_studies = permission_view("medsyn_site.manage_studies")
_view_results = permission_view("medsyn_site.view_results")


def _refused(request: HttpRequest, error: PermissionDenied) -> HttpResponse:
    """403 with the reason spelled out (the services' message), not a bare "Forbidden"."""
    return render(request, "review/assessment/refused.html", {"reason": " ".join(map(str, error.args))}, status=403)


class RaterStudyUnavailable(Exception):
    """The rating address names a study this physician cannot rate now: closed, not open yet, not theirs, or none."""

    def __init__(self, study: Study | None, *, listed: bool) -> None:
        super().__init__(study)
        self.study, self.listed = study, listed


def _study_unavailable(request: HttpRequest, error: RaterStudyUnavailable) -> HttpResponse:
    """A page that says in words why the study cannot be rated, with the way back to the physician's studies: 410 for
    a closed study (it will not open again), 403 for an open one the physician is not a rater of, 404 otherwise."""
    study = error.study
    if study is not None and study.state == Study.State.CLOSED:
        reason, status = "closed", 410
    elif study is not None and study.state == Study.State.OPEN and not error.listed:
        reason, status = "not_rater", 403
    elif study is not None and study.state == Study.State.DRAFT:
        reason, status = "not_open", 404
    else:
        reason, status = "not_found", 404
    return render(request, "review/assessment/study_unavailable.html",
                  {"study": study if reason == "closed" else None, "reason": reason}, status=status)


def _rate(view: Callable) -> Callable:
    """A rating page: the rate_notes permission, and refused (with the reason) to anyone who can see origins."""
    @wraps(view)
    def blind_only(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        try:
            rater_blind_check(request.user)
        except PermissionDenied as error:
            return _refused(request, error)
        try:
            return view(request, *args, **kwargs)
        except RaterStudyUnavailable as error:
            return _study_unavailable(request, error)

    return permission_view("medsyn_site.rate_notes")(blind_only)


@_rate
def rate_home(request: HttpRequest) -> HttpResponse:
    studies = [(study, rater_progress(study, request.user)) for study in studies_open_for_rater(request.user)]
    return render(request, "review/assessment/rate_home.html", {"studies": studies})


def _rater_study(request: HttpRequest, study_id: int) -> Study:
    """The open study this physician rates, or RaterStudyUnavailable (shown by _rate as a page that says why)."""
    study = studies_open_for_rater(request.user).filter(pk=study_id).first()
    if study is None:
        other = Study.objects.filter(pk=study_id).first()
        raise RaterStudyUnavailable(other, listed=other is not None and rater_listed_for(other, request.user))
    return study


def _study_closed(request: HttpRequest, error: StudyStateError) -> HttpResponse:
    """The study closed while the physician was on it: say so and go back to the list (never a 500)."""
    messages.error(request, " ".join(error.messages))
    return redirect("assessment:rate_home")


def _field_errors(error: ValidationError) -> dict:
    return error.message_dict if hasattr(error, "error_dict") else {"__all__": error.messages}


def _answers(request: HttpRequest) -> dict:
    return {key: request.POST.get(key) for key in request.POST if key not in ("csrfmiddlewaretoken", "token")}


@_rate
def rate_study(request: HttpRequest, study_id: int) -> HttpResponse:
    """One note at a time: GET shows the current item, POST records the answers and moves on."""
    study = _rater_study(request, study_id)
    errors = {}
    try:
        if request.method == "POST":
            do_submit_rating(study=study, physician=request.user, token=request.POST.get("token", ""),
                             answers=_answers(request))
            return redirect("assessment:rate_study", study_id=study.pk)
    except StudyStateError as error:  # a subclass of ValidationError: caught first
        return _study_closed(request, error)
    except ValidationError as error:
        errors = _field_errors(error)
    try:
        assignment = assignment_next(study=study, physician=request.user)
    except StudyStateError as error:
        return _study_closed(request, error)
    previous = ratings_by_rater(study, request.user)
    return render(request, "review/assessment/rate_item.html", {
        "study": study, "item": assignment.item if assignment else None, "errors": errors,
        "answers": request.POST if errors else {}, "progress": rater_progress(study, request.user),
        "scale": SCALE, "previous": previous,
    })


@_rate
def rate_revise(request: HttpRequest, study_id: int, token: str) -> HttpResponse:
    study = _rater_study(request, study_id)
    rating = get_object_or_404(Rating.objects.select_related("assignment__item"), assignment__study=study,
                               assignment__physician=request.user, assignment__item__token=token)
    errors = {}
    if request.method == "POST":
        try:
            do_submit_rating(study=study, physician=request.user, token=token, answers=_answers(request))
            messages.success(request, _("Your answer was revised."))
            return redirect("assessment:rate_study", study_id=study.pk)
        except StudyStateError as error:
            return _study_closed(request, error)
        except ValidationError as error:
            errors = _field_errors(error)
    answers = {"origin": "synthetic" if rating.judged_synthetic else "real", "confidence": str(rating.confidence),
               "comment": rating.comment, **{k: str(v) for k, v in rating.likert.items()}}
    return render(request, "review/assessment/rate_item.html", {
        "study": study, "item": rating.assignment.item, "errors": errors, "answers": answers, "revising": True,
        "progress": rater_progress(study, request.user), "scale": SCALE, "previous": [],
    })


@_rate
@require_POST
def rate_skip(request: HttpRequest, study_id: int) -> HttpResponse:
    study = _rater_study(request, study_id)
    try:
        do_skip_item(study=study, physician=request.user, token=request.POST.get("token", ""),
                     reason=request.POST.get("reason", ""))
    except StudyStateError as error:
        return _study_closed(request, error)
    except ValidationError:
        messages.error(request, _("Say why you skip this note."))
    return redirect("assessment:rate_study", study_id=study.pk)


@_manage_studies
def studies(request: HttpRequest) -> HttpResponse:
    form = StudyCreateForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        study = do_set_up_study(
            actor=request.user, name=data["name"], instructions=data["instructions"], overlap_k=data["overlap_k"],
            n_per_origin=data["n_per_origin"], seed=data["seed"],
            synthetic=SyntheticFilter(models=form.split(data["models"]), variants=form.split(data["variants"]),
                                      job_ids=data["jobs"]),
            include_failed_checks=data["include_failed_checks"],
        )
        messages.success(request, _("Study created with %(pairs)s matched pairs.") % {
            "pairs": study.pool_report["pairs"]})
        return redirect("assessment:study_detail", pk=study.pk)
    return render(request, "review/assessment/studies.html", {"studies": studies_listed(), "form": form})


QUESTIONS_FILE_MAX = 256 * 1024  # a question set is a few kilobytes


def _questions_imported(request: HttpRequest) -> dict:
    """The question set from the JSON import: an uploaded file if one was chosen, else the pasted text."""
    upload = request.FILES.get("questions_file")
    if upload is not None:
        if upload.size > QUESTIONS_FILE_MAX:
            raise ValidationError(_("The question set file is larger than %(kb)s KB.")
                                  % {"kb": QUESTIONS_FILE_MAX // 1024})
        try:
            text = text_decode(upload.read(), name=upload.name)
        except InputError as error:
            raise ValidationError(str(error)) from error
    else:
        text = request.POST.get("questions", "")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValidationError(_("The question set is %(error)s.") % {"error": json_error_words(error)}) from error


def _study_page(request: HttpRequest, study: Study, editor: QuestionEditor | None = None, *,
                unsaved: bool = False) -> HttpResponse:
    return render(request, "review/assessment/study_detail.html", {
        "study": study, **study_progress(study), "unsaved": unsaved,
        "editor": editor or QuestionEditor.from_questions(study.questions),
        "questions_json": _questions_json(study),
        "pool": study_pool_summary(study),
        "normaliser": study.blinding_report.get("normaliser"), "probe": study.blinding_report.get("origin_probe"),
    })


def _questions_json(study: Study) -> str:
    return json.dumps(study.questions, ensure_ascii=False, indent=2)


def _questions_edit(request: HttpRequest, study: Study) -> HttpResponse:
    """Add, move or remove a row of the question editor: shown with the values typed so far, saved only by Save."""
    editor = QuestionEditor.from_post(request.POST).edited(request.POST.get("edit", ""))
    if request.htmx:
        return render(request, "review/assessment/_question_editor.html",
                      {"study": study, "editor": editor, "unsaved": True})
    return _study_page(request, study, editor, unsaved=True)


def _questions_save(request: HttpRequest, study: Study) -> HttpResponse:
    """Save the question editor's fields as the study's question set (the same JSON the import takes)."""
    editor = QuestionEditor.from_post(request.POST)
    if editor.is_valid():
        try:
            do_update_study_questions(actor=request.user, study=study,
                                      questions=editor.questions(study.questions))
        except StudyStateError as error:
            messages.error(request, "; ".join(error.messages))
            return redirect("assessment:study_detail", pk=study.pk)
        except ValidationError as error:
            messages.error(request, "; ".join(error.messages))
            return _study_page(request, study, editor)
        messages.success(request, _("Question set saved."))
        return redirect("assessment:study_detail", pk=study.pk)
    messages.error(request, _("The question set was not saved: correct the marked fields."))
    return _study_page(request, study, editor)


@_manage_studies
def study_detail(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_object_or_404(Study, pk=pk)
    if request.method != "POST":
        return _study_page(request, study)
    action = request.POST.get("action")
    if study.state == Study.State.DRAFT and "edit" in request.POST:
        return _questions_edit(request, study)
    if action == "questions_fields":
        return _questions_save(request, study)
    try:
        if action == "questions":
            do_update_study_questions(actor=request.user, study=study, questions=_questions_imported(request))
            messages.success(request, _("Question set imported."))
        elif action == "open":
            do_open_study(actor=request.user, study=study)
        elif action == "close":
            do_close_study(actor=request.user, study=study)
    except ValidationError as error:  # StudyStateError included
        messages.error(request, "; ".join(error.messages))
    return redirect("assessment:study_detail", pk=study.pk)


@_manage_studies
def study_questions_export(request: HttpRequest, pk: int) -> HttpResponse:
    """The study's question set as a JSON file, in the form the import takes."""
    study = get_object_or_404(Study, pk=pk)
    response = HttpResponse(_questions_json(study), content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="study-{study.pk}-questions.json"'
    return response


@_view_results
def study_results_page(request: HttpRequest, pk: int) -> HttpResponse:
    study = get_object_or_404(Study, pk=pk)
    try:
        results_access_check(study, request.user)
    except PermissionDenied as error:
        return _refused(request, error)
    summary = study_results(study)
    plots = []
    if summary.get("likert"):
        series = [(entry["label"], entry["real_mean"] or 0, entry["synthetic_mean"] or 0)
                  for entry in summary["likert"].values()]
        plots.append(bar_chart_svg(series, title=_("Mean Likert scores: real (green) vs synthetic (orange)"),
                                   max_value=5))
    if summary.get("per_physician"):
        series = [(name, d["specificity"] or 0, d["sensitivity"] or 0) for name, d in summary["per_physician"].items()]
        plots.append(bar_chart_svg(series, title=_("Per physician: specificity (green) and sensitivity (orange)"),
                                   max_value=1))
    return render(request, "review/assessment/results.html", {"study": study, "summary": summary, "plots": plots,
                                                                "skips": skip_rows(study)})


@_view_results
def study_export(request: HttpRequest, pk: int, kind: str) -> HttpResponse:
    study = get_object_or_404(Study, pk=pk)
    try:
        results_access_check(study, request.user)
    except PermissionDenied as error:
        return _refused(request, error)
    if kind == "ratings.csv":
        response = HttpResponse(ratings_csv(study), content_type="text/csv; charset=utf-8")
    elif kind == "summary.json":
        response = JsonResponse(study_results(study), json_dumps_params={"ensure_ascii": False, "indent": 2})
    elif kind == "ratings.json":
        response = HttpResponse(json.dumps([asdict(r) for r in rating_rows(study)], ensure_ascii=False),
                                content_type="application/json")
    elif kind == "skips.csv":
        response = HttpResponse(skips_csv(study), content_type="text/csv; charset=utf-8")
    elif kind == "skips.json":
        response = HttpResponse(json.dumps([r.record() for r in skip_rows(study)], ensure_ascii=False),
                                content_type="application/json")
    else:
        raise PermissionDenied
    response["Content-Disposition"] = f'attachment; filename="study-{study.pk}-{kind}"'
    return response
