"""A text progress bar for the graph management commands."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class ProgressBar:
    def __init__(self, out: TextIO | None = None, width: int = 30) -> None:
        self.out = out or sys.stdout
        self.width = width
        self.started = time.perf_counter()
        self._last = ("", -1)

    def __call__(self, step: str, fraction: float) -> None:
        percent = int(max(0.0, min(1.0, fraction)) * 100)
        if (step, percent) == self._last:
            return
        self._last = (step, percent)
        filled = self.width * percent // 100
        elapsed = time.perf_counter() - self.started
        self.out.write(f"\r{step:<6} [{'#' * filled}{'.' * (self.width - filled)}] {percent:3d}%  {elapsed:5.1f}s")
        if percent == 100:
            self.out.write("\n")
        self.out.flush()
