"""Shared running and reporting for the note import commands."""

from __future__ import annotations

from collections.abc import Callable

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from generation.services import ImportCounts, NoteImportError, Progress


def import_run(command: BaseCommand, run: Callable[[Progress], ImportCounts]) -> ImportCounts:
    """Run an import with a progress bar on stderr; report counts, or every problem by line number."""
    with tqdm(total=0, unit="note", file=command.stderr, disable=None, desc="import") as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            counts = run(progress)
        except NoteImportError as error:
            bar.close()
            for line, message in error.problems:
                command.stderr.write(f"{error.source}: line {line}: {message}")
            raise CommandError(f"{error.source}: {len(error.problems)} problem(s); nothing was imported") from None
    command.stdout.write(command.style.SUCCESS(
        f"{counts.created} note(s) created, {counts.skipped} skipped (already stored)"))
    return counts
