"""Charts drawn as plain SVG on the server: no script, nothing for the Content-Security-Policy to allow.

Every text goes through format_html, so a label a user chose (a code, a name, a title) can add no markup; the pieces
are joined with svg_joined, the one place that marks format_html results as safe.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.utils.html import format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.text import Truncator

POSITIVE, NEGATIVE, NEUTRAL = (26, 127, 55), (194, 65, 12), (229, 231, 235)  # green, orange-red, light grey


def svg_joined(parts: list[SafeString]) -> SafeString:
    """Pieces that format_html built (so every value in them is escaped), as one safe string."""
    return mark_safe("".join(parts))  # noqa: S308 - each part is a format_html result


def svg_figure(*, width: int, height: int, title: str, parts: list[SafeString], testid: str = "") -> SafeString:
    """The <svg> element: its title as a heading and as the accessible name, then the pieces; wide enough for the
    title (about 7.5 px a character at 13 px bold)."""
    width = max(width, round(7.5 * len(title)) + 8)
    return format_html('<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" viewBox="0 0 {} {}" '
                       'role="img" aria-label="{}" data-testid="{}"><text x="4" y="16" font-size="13" '
                       'font-weight="600">{}</text>{}</svg>',
                       width, height, width, height, title, testid, title, svg_joined(parts))


def shade_colour(shade: float | None) -> str:
    """A fill for a shade in [-1, 1]: white at 0, green towards 1, orange-red towards -1; grey for None."""
    if shade is None:
        return "#{:02x}{:02x}{:02x}".format(*NEUTRAL)
    shade = max(-1.0, min(1.0, shade))
    target = POSITIVE if shade >= 0 else NEGATIVE
    weight = abs(shade)
    return "#{:02x}{:02x}{:02x}".format(*(round(255 + (channel - 255) * weight) for channel in target))


def _ink(shade: float | None) -> str:
    return "#ffffff" if shade is not None and abs(shade) > 0.6 else "#111111"


@dataclass(frozen=True)
class HeatCell:
    """One cell of a heat map: its main text, a second line, a shade in [-1, 1] (None: neutral) and a tooltip."""

    text: str
    detail: str = ""
    shade: float | None = None
    tooltip: str = ""
    testid: str = ""


def heat_map_svg(*, title: str, rows: list[str], columns: list[str], cells: dict[tuple[int, int], HeatCell],
                 row_title: str = "", column_title: str = "", testid: str = "heat-map") -> SafeString:
    """A table of shaded cells: rows down, columns across, cells[(row, column)] (an absent cell is left blank)."""
    cell_w, cell_h, left, top = 128, 48, 120, 58
    width, height = left + cell_w * len(columns) + 8, top + cell_h * len(rows) + 10
    parts = []
    if column_title:
        parts.append(format_html('<text x="{}" y="32" font-size="11" text-anchor="middle">{}</text>',
                                 left + cell_w * len(columns) / 2, column_title))
    if row_title:
        parts.append(format_html('<text x="4" y="{}" font-size="11">{}</text>', top - 6, row_title))
    for j, column in enumerate(columns):
        parts.append(format_html('<text x="{}" y="{}" font-size="11" text-anchor="middle">{}</text>',
                                 left + cell_w * j + cell_w / 2, top - 6, Truncator(column).chars(22)))
    for i, row in enumerate(rows):
        y = top + cell_h * i
        parts.append(format_html('<text x="4" y="{}" font-size="11">{}</text>', y + cell_h / 2 + 4,
                                 Truncator(row).chars(18)))
        for j in range(len(columns)):
            cell = cells.get((i, j))
            if cell is None:
                continue
            x = left + cell_w * j
            parts.append(format_html(
                '<g data-testid="{}"><rect x="{}" y="{}" width="{}" height="{}" fill="{}" stroke="#ffffff">'
                '<title>{}</title></rect><text x="{}" y="{}" font-size="13" font-weight="600" text-anchor="middle" '
                'fill="{}">{}</text><text x="{}" y="{}" font-size="10" text-anchor="middle" fill="{}">{}</text></g>',
                cell.testid or "heat-cell", x, y, cell_w, cell_h, shade_colour(cell.shade), cell.tooltip or cell.text,
                x + cell_w / 2, y + 20, _ink(cell.shade), cell.text, x + cell_w / 2, y + 37, _ink(cell.shade),
                cell.detail))
    return svg_figure(width=width, height=height, title=title, parts=parts, testid=testid)


@dataclass(frozen=True)
class SignedBar:
    label: str
    value: float  # drawn from the zero line: right when positive, left when negative
    text: str  # the value as shown beside the bar
    tooltip: str = ""


def signed_bars_svg(*, title: str, bars: list[SignedBar], testid: str = "bar-chart") -> SafeString:
    """Horizontal bars around a zero line, one row a label, in the order given (a lift chart: gains right, losses
    left); the scale is the largest absolute value."""
    row_h, left, half, right = 18, 90, 170, 70
    top = 28
    width, height = left + 2 * half + right, top + row_h * max(len(bars), 1) + 8
    scale = max((abs(bar.value) for bar in bars), default=0.0) or 1.0
    zero = left + half
    parts = [format_html('<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#666"/>', zero, top - 4, zero,
                         height - 4)]
    for i, bar in enumerate(bars):
        y = top + row_h * i
        length = half * abs(bar.value) / scale
        x = zero if bar.value >= 0 else zero - length
        colour = shade_colour(1.0 if bar.value >= 0 else -1.0)
        text_x = zero + length + 4 if bar.value >= 0 else zero + 4  # a loss's value right of the zero line
        parts.append(format_html(
            '<g data-testid="bar"><text x="4" y="{}" font-size="11">{}<title>{}</title></text>'
            '<rect x="{}" y="{}" width="{}" height="12" fill="{}"><title>{}</title></rect>'
            '<text x="{}" y="{}" font-size="10">{}</text></g>',
            y + 11, Truncator(bar.label).chars(12), bar.label, f"{x:.1f}", y + 1, f"{length:.1f}", colour,
            bar.tooltip or bar.text, f"{text_x:.1f}", y + 11, bar.text))
    return svg_figure(width=width, height=height, title=title, parts=parts, testid=testid)
