"""Shared output for the graph import commands."""

from __future__ import annotations

from collections.abc import Callable

from django.core.management.base import BaseCommand, CommandError

from graph.services import ImportOutcome
from medsyn_site.core.errors import InputError
from medsyn_site.core.progress import Progress, command_progress_bar


def import_report(command: BaseCommand, desc: str, run: Callable[[Progress], ImportOutcome]) -> ImportOutcome:
    """Run an import with a progress bar of the nodes and edges written; print the version it published, or every
    problem of bad input (and fail)."""
    try:
        with command_progress_bar(command, desc, unit="row") as progress:
            outcome = run(progress)
    except InputError as error:
        for problem in error.report():
            where = f"line {problem['line']}: " if problem["line"] else ""
            command.stderr.write(f"{error.source}: {where}{problem['message']}")
        raise CommandError(f"{error.source}: {len(error.problems)} problem(s); nothing was imported") from None
    version = outcome.version
    if outcome.changed:
        command.stdout.write(command.style.SUCCESS(
            f"graph version v{version.pk} published in {version.duration_s:.2f} s: {version.counts}"))
    else:
        command.stdout.write(f"unchanged: these files are already in the graph (version v{version.pk})")
    return outcome
