from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache

from medsyn_site.access import permission_view
from medsyn_site.core.progress import poll_response
from medsyn_site.health import all_components, supervisor_report, worker_fleet


@login_required
def home(request: HttpRequest) -> HttpResponse:
    """What waits for this user, by what they may do: studies to rate, notes to curate, running jobs, the latest
    releases and evaluations. Polled by htmx while a job runs (the demo's first job shows its progress here)."""
    context = home_todo(request.user) if request.user.is_authenticated else {}
    if request.htmx:
        response = render(request, "partials/home_jobs.html", context)
        return poll_response(response, finished=not context.get("jobs_running"))
    return render(request, "home.html", context)


def home_todo(user) -> dict:
    """The home page's to-do list of a user (site level: it reads every app's selectors; no app reads it)."""
    from django.db.models import Count

    from generation.models import GenerationJob, Note
    from generation.selectors import generation_jobs_list
    from medsyn_site.core.models import JobStatus
    from review.assessment.selectors import rater_progress, studies_open_for_rater
    from review.curation.models import ReviewState
    from review.curation.selectors import review_state
    from review.releases.selectors import releases_list

    todo: dict = {}
    if user.has_perm("medsyn_site.rate_notes"):
        todo["studies"] = [(study, rater_progress(study, user)) for study in studies_open_for_rater(user)]
    if user.has_perm("medsyn_site.curate_notes"):
        synthetic = Note.objects.filter(origin=Note.Origin.SYNTHETIC).annotate(state=review_state())
        counts = dict(synthetic.values_list("state").annotate(n=Count("id")).order_by())
        todo["curation"] = [(state, label, counts.get(state, 0)) for state, label in ReviewState.choices
                            if state in (ReviewState.GENERATED, ReviewState.PENDING_REVIEW, ReviewState.NEEDS_EDIT)]
    if user.has_perm("medsyn_site.run_generation"):
        running = generation_jobs_list().filter(status__in=[JobStatus.QUEUED, JobStatus.RUNNING])
        todo["jobs_running"] = list(running.select_related("model_config")[:10])
        todo["jobs_recent"] = list(generation_jobs_list().exclude(pk__in=[job.pk for job in todo["jobs_running"]])
                                   .select_related("model_config")[:3])
        todo["job_model"] = GenerationJob
    if user.has_perm("medsyn_site.download_releases"):
        todo["releases"] = list(releases_list().order_by("-created_at")[:3])
    return todo


def viewer_is_staff(request: HttpRequest) -> bool:
    """Whether the request comes from staff; False when the database (where sessions live) cannot tell."""
    try:
        return bool(request.user.is_staff)
    except (OperationalError, InterfaceError):
        return False


@never_cache
def healthz(request: HttpRequest) -> JsonResponse:
    """Machine-readable health: 200 when every component is up, 503 otherwise.

    Anyone gets the overall status and up/down per component; only staff get latencies and details (URLs, worker
    host names, paths, error texts), which tell an attacker where things are.
    """
    components = all_components()
    ok = all(c.ok for c in components)
    detailed = viewer_is_staff(request)
    return JsonResponse(
        {
            "status": "ok" if ok else "degraded",
            "components": [c.as_dict() if detailed else c.as_public_dict() for c in components],
        },
        status=200 if ok else 503,
        json_dumps_params={"ensure_ascii": False},
    )


@never_cache
@permission_view("medsyn_site.view_status")
def status(request: HttpRequest) -> HttpResponse:
    components = all_components()
    context = {
        "components": components,
        "all_ok": all(c.ok for c in components),
        "supervisor": supervisor_report(),
        "show_process_details": request.user.is_staff,
        "workers": worker_fleet(),
    }
    if request.htmx:
        return render(request, "partials/status_components.html", context)
    return render(request, "status.html", context)
