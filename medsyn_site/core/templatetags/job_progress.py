"""`{% job_progress job %}`: the one progress block of every background job (templates/partials/job_progress.html):
the status (and the phase while it says more: loading the model, finishing), "N of M" in the job's units, the bar,
the rate and the time left (core.progress.job_progress). Put it inside the element that htmx polls.

`{% job_hosts job %}`: for a job in chunks (core.chunks), the workers that ran or run its chunks, with their counts
(partials/job_hosts.html); nothing for a job that has none.

job_progress's options: unit (a key of core.progress.PROGRESS_UNITS; default the job model's progress_unit),
status_testid and bar_testid (the data-testid of the status and of the bar, default "job-status" and "job-progress").
"""

from __future__ import annotations

from django import template
from django.db import models

from medsyn_site.core.chunks import chunks_by_host
from medsyn_site.core.progress import job_progress as job_progress_of

register = template.Library()


@register.inclusion_tag("partials/job_progress.html")
def job_progress(job: models.Model, *, unit: str = "", status_testid: str = "job-status",
                 bar_testid: str = "job-progress") -> dict:
    return {"progress": job_progress_of(job, unit=unit or None), "status_testid": status_testid,
            "bar_testid": bar_testid}


@register.inclusion_tag("partials/job_hosts.html")
def job_hosts(job: models.Model, *, testid: str = "job-hosts") -> dict:
    return {"hosts": chunks_by_host(job), "testid": testid}
