"""HTML views (htmx) for instruction sets: the list, the new-set form with its preview, a set's page and its files."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _

from graph.store import GraphUnavailable
from medsyn_site.access import permission_view
from medsyn_site.core.progress import poll_response

from .forms_sets import InstructionSetForm
from .instruction_sets import (
    do_build_instruction_set,
    instruction_set_file,
    instruction_set_preview,
    instruction_sets_list,
)
from .models import InstructionSet

_generation = permission_view("medsyn_site.run_generation")


@_generation
def sets(request: HttpRequest) -> HttpResponse:
    page = Paginator(instruction_sets_list(), 50).get_page(request.GET.get("page"))
    return render(request, "generation/training/set_list.html", {"sets": page})


@_generation
def set_new(request: HttpRequest) -> HttpResponse:
    """GET: the form. POST action=preview (htmx): the counts a build would write, computed in the request;
    action=build: reserve the set's version, queue its build and open its page (which follows the build)."""
    if request.method != "POST":
        return render(request, "generation/training/set_new.html", {"form": InstructionSetForm()})
    build = request.POST.get("action") == "build"
    form = InstructionSetForm(request.POST, build=build)
    context: dict = {"form": form}
    status = 200
    if form.is_valid():
        try:
            if build:
                created = do_build_instruction_set(request=form.instruction_set_request(), actor=request.user)
                messages.success(request, _("Instruction set %(set)s is being built.") % {"set": created})
                return redirect("training:set_detail", pk=created.pk)
            context["plan"] = instruction_set_preview(form.instruction_set_request())
        except ValidationError as error:  # the default templates are missing, say
            context["preview_error"] = " ".join(error.messages)
            status = 400
        except GraphUnavailable:
            context["preview_error"] = _("The knowledge graph is unavailable; nothing was built.")
            status = 503
    else:
        status = 400
    if request.htmx:  # the preview fragment: htmx swaps only 2xx answers, so problems come back as 200
        return render(request, "generation/training/set_preview.html", context)
    return render(request, "generation/training/set_new.html", context, status=status)


@_generation
def set_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """The set's page; htmx polls its body while the set is building (stopped once the build has finished)."""
    instruction_set = get_object_or_404(instruction_sets_list(), pk=pk)
    context = {"set": instruction_set, "build": getattr(instruction_set, "build", None)}
    if request.htmx:
        finished = context["build"] is None or context["build"].finished
        return poll_response(render(request, "generation/training/set_body.html", context), finished=finished)
    return render(request, "generation/training/set_detail.html", context)


@_generation
def set_file(request: HttpRequest, pk: int, name: str) -> FileResponse:
    return instruction_set_file_response(get_object_or_404(InstructionSet, pk=pk), name)


def instruction_set_file_response(instruction_set: InstructionSet, name: str) -> FileResponse:
    """A downloadable file of a ready set as an attachment (pages and API); 404 for anything else."""
    path = instruction_set_file(instruction_set, name)
    if path is None:
        raise Http404(_("%(name)r is not a file of %(set)s.") % {"name": name, "set": instruction_set})
    return FileResponse(path.open("rb"), as_attachment=True,
                        filename=f"{instruction_set.name}-v{instruction_set.version}-{name}")
