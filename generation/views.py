"""HTML views (htmx) for generation: jobs, the new-job form with its plan preview, the job page, notes."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from graph.store import GraphUnavailable
from medsyn_site.access import permission_view
from medsyn_site.core.errors import StateConflict
from medsyn_site.core.forms import ascii_digits, form_errors_text
from medsyn_site.core.progress import poll_response

from . import selectors
from .enrichment import do_cancel_symptom_extraction, do_review_symptom_proposals, do_start_symptom_extraction
from .forms import JobForm, NoteFilterForm, NoteImportForm
from .jobs import do_cancel_job, do_create_job, do_resume_job, job_plan_preview, job_waiting_reason
from .models import GenerationJob, ModelConfig, Note, NoteImportJob, PromptTemplate, SymptomExtractionJob
from .services import note_import_upload

RUN_GENERATION = "medsyn_site.run_generation"


_generation = permission_view(RUN_GENERATION)


@_generation
def home(request: HttpRequest) -> HttpResponse:
    jobs = Paginator(selectors.generation_jobs_list(), 25).get_page(request.GET.get("page"))
    return render(request, "generation/home.html", {"jobs": jobs})


@_generation
def new(request: HttpRequest) -> HttpResponse:
    """GET: the form (categories prefilled from ?code=). POST action=preview: the plan table; action=launch."""
    if request.method != "POST":
        default_model = selectors.model_configs().first()
        form = JobForm(initial={"categories": request.GET.get("code", ""), "model_config": default_model})
        return render(request, "generation/new.html", {"form": form})
    form = JobForm(request.POST)
    context: dict = {"form": form}
    if form.is_valid():
        plan_request = form.plan_request()
        try:
            if request.POST.get("action") == "launch":
                job = do_create_job(request=plan_request, model_config=form.cleaned_data["model_config"],
                                    prompt_template=form.prompt_template(), actor=request.user,
                                    budget_cap=form.cleaned_data["budget_cap"])
                messages.success(request, _("Job %(id)s launched.") % {"id": job.pk})
                return redirect("generation:job", pk=job.pk)
            context["plan"] = job_plan_preview(plan_request)
        except ValidationError as error:  # the plan cannot be made (PlanError), or no template for it
            context["plan_error"] = " ".join(error.messages)
        except GraphUnavailable as error:
            context["plan_error"] = _("The knowledge graph is unavailable: %(error)s") % {"error": error}
    template = "generation/_plan_preview.html" if request.htmx else "generation/new.html"
    return render(request, template, context)


def _job_page(request: HttpRequest, pk: int, *, status: int = 200) -> HttpResponse:
    job = get_object_or_404(GenerationJob.objects.select_related("model_config", "prompt_template"), pk=pk)
    context = {"job": job, "errors": selectors.generation_job_errors(job=job)[:200],
               "waiting": job_waiting_reason(job)}
    if request.htmx:
        return poll_response(render(request, "generation/_job_status.html", context), finished=job.finished)
    return render(request, "generation/job.html", context, status=status)


@_generation
def job(request: HttpRequest, pk: int) -> HttpResponse:
    return _job_page(request, pk)


def _job_action(request: HttpRequest, pk: int, action: Callable[..., GenerationJob]) -> HttpResponse:
    """Cancel or resume, then the job page; an action the job's state does not allow (StateConflict: finished
    meanwhile, still running, nothing left to run) is a 409 with the job page and the reason."""
    try:
        action(job=get_object_or_404(GenerationJob, pk=pk), actor=request.user)
    except StateConflict as error:
        messages.error(request, " ".join(error.messages))
        return _job_page(request, pk, status=409)
    return redirect("generation:job", pk=pk)


@require_POST
@_generation
def job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    return _job_action(request, pk, do_cancel_job)


@require_POST
@_generation
def job_resume(request: HttpRequest, pk: int) -> HttpResponse:
    return _job_action(request, pk, do_resume_job)


@_generation
def notes(request: HttpRequest) -> HttpResponse:
    """Generated notes by the filters of NoteFilterForm; an invalid filter is said on the page and not applied."""
    form = NoteFilterForm(request.GET)
    form.is_valid()
    filters = form.filters()
    page = Paginator(selectors.synthetic_notes_filter(**filters), 25).get_page(request.GET.get("page"))
    context = {"notes": page, "filters": filters, "filter_error": form_errors_text(form),
               "models": selectors.model_configs().values_list("name", flat=True),
               "variants": PromptTemplate.Variant.choices}
    template = "generation/_notes_table.html" if request.htmx else "generation/notes.html"
    return render(request, template, context)


@_generation
def note(request: HttpRequest, pk: int) -> HttpResponse:
    note = get_object_or_404(Note, pk=pk, origin=Note.Origin.SYNTHETIC)
    return render(request, "generation/note.html", {"note": note, "meta": note.metadata})


def _id(raw: str) -> int | None:
    """A row id posted by a form: a number in ASCII digits that fits a bigint, else None (int() fails on '²' and
    reads '٣' as 3)."""
    return int(raw) if ascii_digits(raw) and len(raw) <= 18 else None


def _ids(raw: list[str]) -> list[int]:
    return [pk for pk in map(_id, raw) if pk is not None]


@_generation
def enrichment(request: HttpRequest) -> HttpResponse:
    """Start an LLM symptom extraction, follow it (htmx polls the live part: the extractions' progress and the
    proposals as they arrive), accept or reject its proposed HAS_SYMPTOM edges."""
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "extract":
                config = get_object_or_404(ModelConfig, pk=_id(request.POST.get("model_config", "")))
                do_start_symptom_extraction(actor=request.user, model_config=config,
                                            categories=request.POST.get("categories", "").split(","))
                messages.success(request, _("Symptom extraction started; proposals appear here as notes are read."))
            elif action in ("accept", "reject"):
                chosen = selectors.symptom_proposals_by_id(_ids(request.POST.getlist("proposal")))
                done = do_review_symptom_proposals(actor=request.user, proposals=chosen, accept=action == "accept")
                messages.success(request, _("%(n)s proposals reviewed.") % {"n": done})
        except ValidationError as error:
            messages.error(request, " ".join(error.messages))
        except GraphUnavailable:
            messages.error(request, _("The graph database is unavailable; nothing was changed."))
        return redirect("generation:enrichment")
    extractions = list(selectors.symptom_extractions_recent())
    context = {"proposals": selectors.symptom_proposals_pending(), "extractions": extractions,
               "extraction_running": any(not job.finished for job in extractions)}
    if request.htmx:
        return poll_response(render(request, "generation/_enrichment_live.html", context),
                             finished=not context["extraction_running"])
    return render(request, "generation/enrichment.html", {
        **context, "reviewed": selectors.symptom_proposals_reviewed(), "configs": selectors.model_configs()})


@require_POST
@_generation
def enrichment_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        do_cancel_symptom_extraction(job=get_object_or_404(SymptomExtractionJob, pk=pk), actor=request.user)
    except StateConflict as error:
        messages.error(request, " ".join(error.messages))
    return redirect("generation:enrichment")


_manage_graph = permission_view("medsyn_site.manage_graph")


@_manage_graph
def note_import(request: HttpRequest) -> HttpResponse:
    """Admins upload a notes file; a Celery job validates and imports it all or nothing."""
    form = NoteImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        job = note_import_upload(kind=form.cleaned_data["kind"], split=form.cleaned_data["split"],
                                 upload=form.cleaned_data["upload"], actor=request.user)
        return redirect("generation:note_import_job", pk=job.pk)
    return render(request, "generation/note_import.html", {"form": form, "jobs": selectors.note_import_jobs_recent()})


@_manage_graph
def note_import_job(request: HttpRequest, pk: int) -> HttpResponse:
    job = get_object_or_404(NoteImportJob, pk=pk)
    if request.htmx:
        return poll_response(render(request, "generation/_note_import_status.html", {"job": job}),
                             finished=job.finished)
    return render(request, "generation/note_import_job.html", {"job": job})
