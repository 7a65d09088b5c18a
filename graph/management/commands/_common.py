"""Shared output for the graph import commands."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from graph.payload import GraphInputError
from graph.services import ImportOutcome


def import_report(command: BaseCommand, run) -> ImportOutcome:
    try:
        outcome = run()
    except GraphInputError as error:
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
