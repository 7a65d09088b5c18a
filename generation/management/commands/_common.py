"""Shared running and reporting for the note import commands."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from generation.services import ImportCounts, note_import_file
from medsyn_site.core.errors import InputError
from medsyn_site.core.progress import command_progress_bar


def import_run(command: BaseCommand, *, kind: str, path: Path, split: str = "", source_dataset: str = ""
               ) -> ImportCounts:
    """Import a file as an import job with a progress bar on stderr; report counts, or every problem by line
    number (and fail: nothing was imported)."""
    if not path.is_file():
        raise CommandError(f"{path}: no such file")
    try:
        with command_progress_bar(command, "import") as progress:
            counts = note_import_file(kind=kind, path=path, split=split, source_dataset=source_dataset,
                                      progress=progress)
    except InputError as error:
        for problem in error.report():
            where = f"line {problem['line']}: " if problem["line"] else ""
            command.stderr.write(f"{error.source}: {where}{problem['message']}")
        raise CommandError(f"{error.source}: {len(error.problems)} problem(s); nothing was imported") from None
    command.stdout.write(command.style.SUCCESS(
        f"{counts.created} note(s) created, {counts.skipped} skipped (already stored)"))
    return counts
