"""HTML views (htmx) for fine-tuning jobs: the list, the new-job form, the job page with its live loss curve, cancel,
and the adapter as a zip."""

from __future__ import annotations

import math
import tempfile
import zipfile
from pathlib import Path

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from medsyn_site.access import permission_view
from medsyn_site.core.errors import StateConflict
from medsyn_site.core.progress import poll_response
from medsyn_site.core.svg import svg_joined

from .finetune import do_cancel_finetune, do_start_finetune, finetune_jobs_list, job_adapter_folder, job_output_dir
from .forms_finetune import FineTuneForm
from .lora import ADAPTER
from .models import FineTuneJob

_generation = permission_view("medsyn_site.run_generation")


# --- The loss curve -----------------------------------------------------------------------------------------------

def loss_curve_svg(metrics: list[dict], *, title: str, width: int = 560, height: int = 240) -> SafeString:
    """Train loss (every step) and validation loss (where measured) against the step, drawn as plain SVG on the
    server. Every text goes through format_html (the title is the job's name, which a user chose)."""
    train = [(entry["step"], entry["train_loss"]) for entry in metrics
             if isinstance(entry.get("train_loss"), int | float) and math.isfinite(entry["train_loss"])]
    validation = [(entry["step"], entry["val_loss"]) for entry in metrics
                  if isinstance(entry.get("val_loss"), int | float) and math.isfinite(entry["val_loss"])]
    left, top, right, bottom = 52, 28, 12, 34
    plot_w, plot_h = width - left - right, height - top - bottom
    points = train + validation
    if not points:
        return format_html('<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="40" role="img" '
                           'aria-label="{}"><text x="4" y="24" font-size="13">{}</text></svg>',
                           width, title, _("No step finished yet."))
    max_step = max(max(step for step, _loss in points), 1)
    low, high = min(loss for _step, loss in points), max(loss for _step, loss in points)
    if high - low < 1e-9:
        low, high = low - 0.5, high + 0.5

    def xy(step: float, loss: float) -> str:
        return f"{left + plot_w * step / max_step:.1f},{top + plot_h * (high - loss) / (high - low):.1f}"

    parts = [format_html('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999"/>'
                         '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999"/>',
                         left, top, left, top + plot_h, left, top + plot_h, left + plot_w, top + plot_h)]
    for value, y in ((high, top), (low, top + plot_h)):
        parts.append(format_html('<text x="{}" y="{}" font-size="10" text-anchor="end">{}</text>',
                                 left - 4, y + 4, f"{value:.3f}"))
    for step, anchor, x in ((0, "start", left), (max_step, "end", left + plot_w)):
        parts.append(format_html('<text x="{}" y="{}" font-size="10" text-anchor="{}">{}</text>',
                                 x, top + plot_h + 14, anchor, step))
    parts.append(format_html('<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>',
                             left + plot_w / 2, height - 4, _("step")))
    for series, colour, name, testid in ((train, "#1d4ed8", _("train loss"), "train-curve"),
                                         (validation, "#c2410c", _("validation loss"), "val-curve")):
        if len(series) == 1:
            step, loss = series[0]
            x, y = xy(step, loss).split(",")
            parts.append(format_html('<circle cx="{}" cy="{}" r="3" fill="{}" data-testid="{}"><title>{}</title>'
                                     '</circle>', x, y, colour, testid, name))
        elif series:
            parts.append(format_html('<polyline fill="none" stroke="{}" stroke-width="1.5" points="{}" '
                                     'data-testid="{}"><title>{}</title></polyline>',
                                     colour, " ".join(xy(step, loss) for step, loss in series), testid, name))
    legend = [(_("train loss"), "#1d4ed8"), (_("validation loss"), "#c2410c")]
    for index, (name, colour) in enumerate(legend):
        x = left + 8 + index * 130
        parts.append(format_html('<rect x="{}" y="{}" width="10" height="10" fill="{}"/>'
                                 '<text x="{}" y="{}" font-size="11">{}</text>', x, top + 4, colour, x + 14,
                                 top + 13, name))
    return format_html('<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" role="img" aria-label="{}">'
                       '<text x="4" y="16" font-size="13" font-weight="600">{}</text>{}</svg>',
                       width, height, title, title, svg_joined(parts))


# --- Pages --------------------------------------------------------------------------------------------------------

@_generation
def jobs(request: HttpRequest) -> HttpResponse:
    page = Paginator(finetune_jobs_list(), 25).get_page(request.GET.get("page"))
    return render(request, "generation/training/finetune_list.html", {"jobs": page})


@_generation
def job_new(request: HttpRequest) -> HttpResponse:
    """GET: the form with the paper's settings; POST: start the job and open its page."""
    form = FineTuneForm(request.POST or None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                job = do_start_finetune(base_config=data["base_config"], instruction_set=data["instruction_set"],
                                        name=data["name"], parameters=form.parameters(), actor=request.user)
            except ValidationError as error:
                if hasattr(error, "error_dict"):
                    for field, field_errors in error.error_dict.items():
                        form.add_error(field if field in form.fields else None, field_errors)
                else:
                    form.add_error(None, error)
            else:
                messages.success(request, _("Fine-tuning job %(id)s started.") % {"id": job.pk})
                return redirect("training:finetune_job", pk=job.pk)
        status = 400
    return render(request, "generation/training/finetune_new.html", {"form": form}, status=status)


def job_context(job: FineTuneJob) -> dict:
    last = job.metrics[-1] if job.metrics else {}
    validation = [entry for entry in job.metrics if entry.get("val_loss") is not None]
    published = bool((job.run_info or {}).get("adapter"))  # the storage is not asked on every poll
    return {
        "job": job, "last": last, "last_val": validation[-1] if validation else None,
        "curve": loss_curve_svg(job.metrics, title=_("Loss of %(name)s") % {"name": job.name}),
        "adapter_ready": job.status == "done" and (published or (job_output_dir(job) / ADAPTER).is_dir()),
        "warnings": job.run_info.get("warnings", []),
    }


def _job_page(request: HttpRequest, pk: int, *, status: int = 200) -> HttpResponse:
    job = get_object_or_404(finetune_jobs_list(), pk=pk)
    context = job_context(job)
    if request.htmx:
        return poll_response(render(request, "generation/training/finetune_job_status.html", context),
                             finished=job.finished)
    return render(request, "generation/training/finetune_job.html", context, status=status)


@_generation
def job(request: HttpRequest, pk: int) -> HttpResponse:
    return _job_page(request, pk)


@require_POST
@_generation
def job_cancel(request: HttpRequest, pk: int) -> HttpResponse:
    try:
        do_cancel_finetune(job=get_object_or_404(FineTuneJob, pk=pk), actor=request.user)
    except StateConflict as error:
        messages.error(request, " ".join(error.messages))
        return _job_page(request, pk, status=409)
    return redirect("training:finetune_job", pk=pk)


def adapter_zip_response(job: FineTuneJob) -> FileResponse:
    """The finished job's adapter folder as <name>-adapter.zip (404 before it exists), as published to the adapters
    storage (so any web host serves it, whichever worker trained it), streamed from a temporary file: an adapter of
    a 7B model is tens of megabytes."""
    with job_adapter_folder(job) as adapter:
        if adapter is None:
            raise Http404(_("This job has no adapter to download."))
        archive = tempfile.TemporaryFile()  # noqa: SIM115 - FileResponse closes it
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as bundle:
            for path in sorted(adapter.rglob("*")):
                if path.is_file():
                    bundle.write(path, Path(ADAPTER) / path.relative_to(adapter))
    archive.seek(0)
    slug = "".join(char if char.isalnum() or char in "-_." else "-" for char in job.name)[:80] or f"job-{job.pk}"
    return FileResponse(archive, as_attachment=True, filename=f"{slug}-adapter.zip", content_type="application/zip")


@_generation
def job_adapter(request: HttpRequest, pk: int) -> FileResponse:
    return adapter_zip_response(get_object_or_404(FineTuneJob, pk=pk))
