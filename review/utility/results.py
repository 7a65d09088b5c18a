"""A finished evaluation's result as the pages, downloads and the dataset card show it: the grid as a heat map, the
per-code lift chart, the tables (cells, deciles, chapters) and CSV files, all read from the stored
UtilityResult.as_json()."""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from django.utils.safestring import SafeString
from django.utils.text import capfirst
from django.utils.translation import gettext as _

from medsyn_site.core.spreadsheet import csv_row_safe
from medsyn_site.core.svg import HeatCell, SignedBar, heat_map_svg, signed_bars_svg

from .evaluation import GRID, REAL_ONLY, CellResult, UtilityResult, code_lifts, grid_cell_key
from .metrics import METRICS

SUBSETS = ("all", "rarest", "hardest", "held_out")
FULL_SYNTHETIC = grid_cell_key(1.0, 1.0)  # all real notes plus all synthetic notes: the headline comparison


def metric_names() -> dict[str, str]:
    return {"accuracy": _("accuracy"), "hit3": "Hit@3", "hit5": "Hit@5", "macro_f1": "macro-F1"}


def subset_names() -> dict[str, str]:
    return {"all": _("all codes"), "rarest": _("rarest codes"), "hardest": _("hardest codes"),
            "held_out": _("held-out codes")}


def result_load(data: dict) -> UtilityResult:
    """The stored JSON as the engine's UtilityResult (code_lifts and utility_table take it)."""
    fields = {key: value for key, value in data.items() if key != "cells"}
    return UtilityResult(**fields, cells=[CellResult(**cell) for cell in data["cells"]])


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def percent(value: Any, *, signed: bool = False) -> str:
    """A share as a percentage with one decimal ("46.5", "+1.2"); "–" for a value no resample could score."""
    if not _finite(value):
        return "–"
    return f"{100 * value:+.1f}" if signed else f"{100 * value:.1f}"


def p_text(value: Any) -> str:
    if not _finite(value):
        return ""
    return "p < 0.001" if value < 0.001 else f"p {value:.3f}"


def metric_shown(value: dict) -> dict[str, str]:
    """One MetricValue dict as the table shows it: the value with its interval, the difference with its interval
    and p (empty for a baseline cell)."""
    shown = {"value": percent(value.get("value")),
             "interval": f"{percent(value.get('low'))}–{percent(value.get('high'))}",
             "delta": "", "delta_interval": "", "p": ""}
    if value.get("delta") is not None:
        shown.update(delta=percent(value["delta"], signed=True),
                     delta_interval=f"{percent(value.get('delta_low'), signed=True)}…"
                                    f"{percent(value.get('delta_high'), signed=True)}",
                     p=p_text(value.get("p")))
    return shown


def training_mean(cell: CellResult, origin: str) -> int:
    return round(sum(entry[origin] for entry in cell.training) / max(len(cell.training), 1))


def cell_rows(result: UtilityResult, subset: str = "all", cells: list[CellResult] | None = None) -> list[dict]:
    """Each cell of the run (or of cells): its label, what it trained on (mean over seeds) and every metric on the
    subset."""
    return [{"key": cell.key, "label": cell.label, "kind": cell.kind, "baseline": cell.baseline,
             "real": training_mean(cell, "real"), "synthetic": training_mean(cell, "synthetic"),
             "metrics": [metric_shown(cell.metrics[subset][metric]) for metric in METRICS]}
            for cell in (result.cells if cells is None else cells) if subset in cell.metrics]


def focus_cells(result: UtilityResult) -> list[CellResult]:
    """The cells the deciles and chapters are shown for: all real notes with each share of synthetic notes, and the
    other experiments (as utility_table does; the downloads hold every cell)."""
    return [cell for cell in result.cells if cell.kind != GRID or cell.real_fraction == 1]


def subset_tables(result: UtilityResult) -> list[dict]:
    """The deciles (rarest, hardest) and the held-out codes: their codes and each cell's figures on them."""
    names = subset_names()
    return [{"name": subset, "label": names[subset], "codes": result.subsets[subset],
             "rows": cell_rows(result, subset, focus_cells(result))}
            for subset in SUBSETS[1:] if subset in result.subsets]


def chapter_rows(result: UtilityResult) -> tuple[list[CellResult], list[dict]]:
    """(the focus cells, a row per ICD-10 chapter with each one's accuracy and Hit@3 on its evaluation notes)."""
    cells = focus_cells(result)
    rows = [{"chapter": row["chapter"], "evaluation": row["evaluation"], "codes": len(row["codes"]),
             "cells": [{"accuracy": percent(row["cells"][cell.key]["accuracy"]),
                        "hit3": percent(row["cells"][cell.key]["hit3"])} for cell in cells]}
            for row in result.per_chapter]
    return cells, rows


def compared_cells(result: UtilityResult) -> list[CellResult]:
    """The cells with a baseline (those a lift chart can show), the full real + full synthetic cell first."""
    cells = [cell for cell in result.cells if cell.baseline]
    return sorted(cells, key=lambda cell: cell.key != FULL_SYNTHETIC)


def heat_map(result: UtilityResult, metric: str = "accuracy") -> SafeString:
    """The mixing grid: real fractions down, synthetic fractions across; each cell its metric, and for cells with
    synthetic notes the difference from the real-only cell of its row and p; shaded by that difference (green a
    gain, orange-red a loss, grey a real-only cell), full shade at 5 points."""
    grid = [cell for cell in result.cells if cell.kind == GRID]
    reals = sorted({cell.real_fraction for cell in grid}, reverse=True)
    extras = sorted({cell.synthetic_fraction for cell in grid})
    cells = {}
    for cell in grid:
        value = cell.metrics["all"][metric]
        detail, shade = _("real only"), None
        if value.get("delta") is not None:
            detail = f"{percent(value['delta'], signed=True)} · {p_text(value.get('p'))}"
            shade = value["delta"] / 0.05 if _finite(value["delta"]) else None
        tooltip = _("%(cell)s: %(metric)s %(value)s %% (95 %% CI %(low)s–%(high)s)") % {
            "cell": cell.label, "metric": metric_names()[metric], "value": percent(value.get("value")),
            "low": percent(value.get("low")), "high": percent(value.get("high"))}
        cells[(reals.index(cell.real_fraction), extras.index(cell.synthetic_fraction))] = HeatCell(
            text=f"{percent(value.get('value'))} %", detail=detail, shade=shade, tooltip=tooltip,
            testid=f"heat-cell-{cell.key}".replace(" ", "-"))
    return heat_map_svg(
        title=capfirst(_("%(metric)s on the evaluation set, %% (difference from real only, p)") % {
            "metric": metric_names()[metric]}),
        rows=[_("real %(share)d%%") % {"share": round(100 * share)} for share in reals],
        columns=[_("synthetic +%(share)d%%") % {"share": round(100 * share)} for share in extras],
        cells=cells, row_title=_("real notes kept"), column_title=_("synthetic notes added"))


def lift_chart(result: UtilityResult, key: str, metric: str = "accuracy") -> SafeString:
    """Per code, the cell's metric minus its baseline's, largest gain first (evaluation.code_lifts)."""
    cell = result.cell(key)
    bars = [SignedBar(label=row["code"], value=row["lift"], text=percent(row["lift"], signed=True),
                      tooltip=_("%(code)s: %(value)s %% against %(baseline)s %% (%(notes)d evaluation notes, "
                                "%(real)d real and %(synthetic)d synthetic training notes)") % {
                          "code": row["code"], "value": percent(row["value"]), "baseline": percent(row["baseline"]),
                          "notes": row["evaluation"], "real": row["real"], "synthetic": row["synthetic"]})
            for row in code_lifts(result, key, metric) if _finite(row["lift"])]
    return signed_bars_svg(
        title=_("Per-code lift in %(metric)s: %(cell)s against %(baseline)s, points") % {
            "metric": metric_names()[metric], "cell": cell.label, "baseline": result.cell(cell.baseline).label},
        bars=bars, testid="lift-chart")


def headline(result: UtilityResult) -> dict | None:
    """The real-only cell and the full real + full synthetic cell on all codes (None without synthetic notes)."""
    keys = {cell.key for cell in result.cells}
    if FULL_SYNTHETIC not in keys:
        return None
    real, mixed = result.cell(REAL_ONLY).metrics["all"], result.cell(FULL_SYNTHETIC).metrics["all"]
    return {metric: {"real": percent(real[metric]["value"]), "mixed": percent(mixed[metric]["value"]),
                     "delta": percent(mixed[metric]["delta"], signed=True), "p": p_text(mixed[metric]["p"])}
            for metric in METRICS}


def overlap_shown(overlap: dict) -> dict | None:
    """The overlap report with its shares as percentages (None before the run checked it)."""
    if not overlap:
        return None
    return {**overlap, "share_percent": percent(overlap.get("share")),
            "max_share_percent": percent(overlap.get("max_share"))}


def metrics_csv(result: UtilityResult) -> str:
    """Every figure of every cell: one row a (cell, subset, metric), shares in [0, 1]."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["cell", "label", "kind", "baseline", "subset", "metric", "value", "low", "high", "delta",
                     "delta_low", "delta_high", "p", "real_training_notes", "synthetic_training_notes"])
    for cell in result.cells:
        for subset, metrics in cell.metrics.items():
            for metric, value in metrics.items():
                writer.writerow(csv_row_safe([
                    cell.key, cell.label, cell.kind, cell.baseline or "", subset, metric,
                    *("" if value.get(name) is None else value[name]
                      for name in ("value", "low", "high", "delta", "delta_low", "delta_high", "p")),
                    training_mean(cell, "real"), training_mean(cell, "synthetic")]))
    return buffer.getvalue()


def per_code_csv(result: UtilityResult) -> str:
    """One row a code: its notes, and each cell's seed-averaged accuracy, Hit@3 and F1 on it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    measures = ("accuracy", "hit3", "f1")
    writer.writerow(["code", "chapter", "evaluation_notes", "real_training_notes", "synthetic_training_notes",
                     *(f"{cell.key}: {measure}" for cell in result.cells for measure in measures)])
    for row in result.per_code:
        writer.writerow(csv_row_safe([row["code"], row["chapter"], row["evaluation"], row["real"], row["synthetic"],
                                      *(row["cells"][cell.key][measure] for cell in result.cells
                                        for measure in measures)]))
    return buffer.getvalue()
