"""Progress of background jobs: one recorder that jobs call, one response for htmx polling, one command bar.

ProgressRecorder writes outside the caller's transaction: an all-or-nothing import runs in one transaction, and
a write of its progress inside it would stay invisible to the page until the very end. Inside an atomic block
it writes through a second, autocommit database connection of its own; outside one, through Django's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.core.management.base import BaseCommand
from django.db import connections, models
from django.db.models.sql import UpdateQuery
from django.http import HttpResponse
from django.utils import timezone
from django_htmx.http import HttpResponseStopPolling
from tqdm import tqdm

Progress = Callable[[int, int], None]  # (units done, units total)


class ProgressRecorder:
    """Call it with (done, total); it stores progress_done / progress_total on the job row, at most once per
    percent and per min_interval seconds (and always the last call), and passes every call on to `also`
    (a command's progress bar, say)."""

    def __init__(self, job: models.Model, *, also: Progress | None = None, min_interval: float = 0.5,
                 using: str = "default") -> None:
        self.model = type(job)
        self.pk = job.pk
        self.also = also
        self.min_interval = min_interval
        self.using = using
        self._last_percent = -1
        self._last_write = 0.0
        self._side = None  # a raw autocommit connection, opened the first time a write happens in a transaction

    def __call__(self, done: int, total: int) -> None:
        if self.also is not None:
            self.also(done, total)
        percent = int(100 * done / total) if total else 0
        now = time.monotonic()
        final = total and done >= total
        if percent == self._last_percent or (not final and now - self._last_write < self.min_interval):
            return
        self._last_percent, self._last_write = percent, now
        self.write(progress_done=done, progress_total=total)

    def write(self, **fields: object) -> None:
        """Update fields of the job row now, visible to other connections whatever transaction is open (and its
        updated_at: a job that writes progress is alive)."""
        fields.setdefault("updated_at", timezone.now())
        connection = connections[self.using]
        if not connection.in_atomic_block:
            self.model.objects.using(self.using).filter(pk=self.pk).update(**fields)
            return
        query = self.model.objects.using(self.using).filter(pk=self.pk).query.chain(UpdateQuery)
        query.add_update_values(fields)
        sql, params = query.get_compiler(self.using).as_sql()
        if self._side is None:
            self._side = connection.get_new_connection(connection.get_connection_params())
            self._side.autocommit = True
        with self._side.cursor() as cursor:
            cursor.execute(sql, params)

    def close(self) -> None:
        if self._side is not None:
            self._side.close()
            self._side = None

    def __enter__(self) -> ProgressRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def poll_response(response: HttpResponse, *, finished: bool) -> HttpResponse:
    """An htmx polling fragment: the same content, with "stop polling" (286) once the job has finished."""
    return HttpResponseStopPolling(response.content) if finished else response


@contextmanager
def command_progress_bar(command: BaseCommand, desc: str, unit: str = "note") -> Iterator[Progress]:
    """A tqdm bar on a management command's stderr, fed by (done, total) progress callbacks.

    It writes to the stream under Django's OutputWrapper, which would end every redraw with a newline."""
    stream = getattr(command.stderr, "_out", command.stderr)
    with tqdm(total=0, unit=unit, file=stream, disable=None, desc=desc) as bar:

        def progress(done: int, total: int) -> None:
            if bar.total != total:
                bar.total = total
                bar.refresh()
            bar.update(done - bar.n)

        yield progress
