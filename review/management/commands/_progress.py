"""A tqdm bar on the command's stderr, fed by the (done, total) progress callbacks of scans and exports."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.core.management.base import BaseCommand
from tqdm import tqdm


@contextmanager
def progress_bar(command: BaseCommand, desc: str, unit: str = "note") -> Iterator[Callable[[int, int], None]]:
    with tqdm(total=0, unit=unit, file=command.stderr, disable=None, desc=desc) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        yield progress
