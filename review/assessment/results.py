"""Results of a study: detection, agreement, Likert comparisons, per-note detectability, plots and exports.

Who may see them: results_access_check. Ratings by people who can see notes' origins
(medsyn_site.roles.origin_seers) are not blind and are left out of every result and export (their number is reported).
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import asdict, dataclass, fields
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.translation import gettext as _

from medsyn_site.core.icd10 import icd_chapter
from medsyn_site.core.spreadsheet import csv_row_safe
from medsyn_site.core.svg import svg_joined
from medsyn_site.roles import origin_seers

from . import stats
from .models import Assignment, Rating, Study


def results_access_check(study: Study, user: AbstractBaseUser) -> None:
    """Refuse the results of an open study (page, API, exports) to anyone who rated in it or holds an item of it:
    seeing which notes were synthetic while still rating would unblind them."""
    if study.state == Study.State.OPEN and Assignment.objects.filter(study=study, physician=user).exists():
        raise PermissionDenied(_("You rate in this study, so its results are not shown to you while it is open. "
                                 "They are shown once it closes."))


@dataclass(frozen=True)
class RatingRow:
    """One answer, with what the rater did not see (origin, model, variant) joined back for analysis."""

    item_token: str
    physician: str
    is_synthetic: bool
    judged_synthetic: bool
    confidence: int
    likert: dict
    comment: str
    seconds_on_item: float | None
    diagnosis_code: str
    chapter: str
    model: str
    variant: str


def _blind_ratings(study: Study):
    return Rating.objects.filter(assignment__study=study).exclude(assignment__physician__in=origin_seers())


def rating_rows(study: Study) -> list[RatingRow]:
    """The study's blind ratings (those of people who can see origins are left out), oldest assignment first."""
    ratings = (_blind_ratings(study)
               .select_related("assignment__item__note", "assignment__physician").order_by("assignment_id"))
    rows = []
    for rating in ratings:
        item = rating.assignment.item
        meta = item.note.metadata or {}
        rows.append(RatingRow(
            item_token=item.token, physician=rating.assignment.physician.get_username(),
            is_synthetic=item.is_synthetic, judged_synthetic=rating.judged_synthetic, confidence=rating.confidence,
            likert=rating.likert, comment=rating.comment, seconds_on_item=rating.assignment.seconds_on_item,
            diagnosis_code=item.diagnosis_code, chapter=icd_chapter(item.diagnosis_code),
            model=meta.get("generation_model", "") if item.is_synthetic else "",
            variant=meta.get("prompt_variant", "") if item.is_synthetic else "",
        ))
    return rows


@dataclass(frozen=True)
class SkipRow:
    """One skipped note with the physician's reason, and what the physician did not see joined back."""

    item_token: str
    physician: str
    reason: str
    skipped_at: datetime | None  # None for skips recorded before the time was kept
    is_synthetic: bool
    diagnosis_code: str
    chapter: str
    model: str
    variant: str

    def record(self) -> dict:
        """The row for the exports (the time in ISO 8601)."""
        return {**asdict(self), "skipped_at": self.skipped_at.isoformat() if self.skipped_at else None}


SKIP_COLUMNS = tuple(field.name for field in fields(SkipRow))


def skip_rows(study: Study) -> list[SkipRow]:
    """The study's skips with their reasons, oldest first; skips by people who can see origins are left out as their
    ratings are."""
    skipped = (Assignment.objects.filter(study=study, status=Assignment.Status.SKIPPED)
               .exclude(physician__in=origin_seers()).select_related("item__note", "physician")
               .order_by("answered_at", "pk"))
    rows = []
    for assignment in skipped:
        item = assignment.item
        meta = item.note.metadata or {}
        rows.append(SkipRow(
            item_token=item.token, physician=assignment.physician.get_username(), reason=assignment.skip_reason,
            skipped_at=assignment.answered_at,
            is_synthetic=item.is_synthetic, diagnosis_code=item.diagnosis_code,
            chapter=icd_chapter(item.diagnosis_code),
            model=meta.get("generation_model", "") if item.is_synthetic else "",
            variant=meta.get("prompt_variant", "") if item.is_synthetic else "",
        ))
    return rows


def _skips_by_reason(rows: list[SkipRow]) -> list[dict]:
    """How often each reason was given (spelled as first given; case and spacing do not make a new reason), the most
    frequent first, with how many of those notes were synthetic."""
    groups: dict[str, dict] = {}
    for row in rows:
        group = groups.setdefault(" ".join(row.reason.split()).casefold(),
                                  {"reason": row.reason, "n": 0, "synthetic": 0})
        group["n"] += 1
        group["synthetic"] += row.is_synthetic
    return sorted(groups.values(), key=lambda group: (-group["n"], group["reason"].casefold()))


def _detection(rows: list[RatingRow]) -> dict | None:
    if not rows:
        return None
    return asdict(stats.detection_summary([r.is_synthetic for r in rows], [r.judged_synthetic for r in rows]))


def _grouped(rows: list[RatingRow], key) -> dict[str, dict]:
    groups: dict[str, list[RatingRow]] = defaultdict(list)
    for row in rows:
        value = key(row)
        if value is not None:
            groups[value].append(row)
    return {name: _detection(group) for name, group in sorted(groups.items())}


def study_results(study: Study) -> dict:
    rows = rating_rows(study)
    summary: dict = {"study": study.name, "state": study.state, "overlap_k": study.overlap_k, "n_ratings": len(rows),
                     "n_items": study.items.count(),
                     "n_ratings_not_blind": Rating.objects.filter(assignment__study=study).count() - len(rows)}
    skips = skip_rows(study)
    summary["skips"] = {"n": len(skips), "by_reason": _skips_by_reason(skips)}
    if not rows:
        return summary
    summary["detection"] = _detection(rows)
    summary["per_physician"] = _grouped(rows, lambda r: r.physician)
    # Per generator: how often its notes were called synthetic (its own sensitivity), plus the real notes.
    summary["per_model"] = _grouped(rows, lambda r: r.model if r.is_synthetic else None)
    summary["per_variant"] = _grouped(rows, lambda r: r.variant if r.is_synthetic else None)
    summary["per_chapter"] = _grouped(rows, lambda r: r.chapter)
    labels = [r.is_synthetic for r in rows]
    if any(labels) and not all(labels):
        scores = [stats.confidence_weighted_score(r.judged_synthetic, r.confidence) for r in rows]
        summary["roc_auc"] = stats.roc_auc(labels, scores)
    by_item: dict[str, list[RatingRow]] = defaultdict(list)
    for row in rows:
        by_item[row.item_token].append(row)
    complete = [group for group in by_item.values() if len(group) == study.overlap_k]
    if len(complete) >= 2 and study.overlap_k >= 2:
        table = [[sum(not r.judged_synthetic for r in g), sum(r.judged_synthetic for r in g)] for g in complete]
        try:
            summary["fleiss_kappa"] = stats.fleiss_kappa(table)
        except ValueError:
            summary["fleiss_kappa"] = None
    questions = {q["key"]: q.get("label") or q["key"] for q in study.questions.get("likert", [])}
    summary["likert"] = {}
    for key, label in questions.items():
        real = [r.likert[key] for r in rows if not r.is_synthetic and key in r.likert]
        synthetic = [r.likert[key] for r in rows if r.is_synthetic and key in r.likert]
        entry: dict = {
            "label": label,
            "real": {str(v): real.count(v) for v in range(1, 6)},
            "synthetic": {str(v): synthetic.count(v) for v in range(1, 6)},
            "real_mean": sum(real) / len(real) if real else None,
            "synthetic_mean": sum(synthetic) / len(synthetic) if synthetic else None,
        }
        if real and synthetic:
            test = stats.mann_whitney_u(synthetic, real)
            entry.update(mann_whitney_u=test.u, p_value=test.p_value, rank_biserial=test.rank_biserial)
        units = [[r.likert.get(key) for r in group] for group in by_item.values()]
        try:
            entry["krippendorff_alpha"] = stats.krippendorff_alpha_ordinal(units)
        except ValueError:
            entry["krippendorff_alpha"] = None
        summary["likert"][key] = entry
    summary["detectability"] = sorted(
        ({"token": token, "is_synthetic": group[0].is_synthetic, "diagnosis_code": group[0].diagnosis_code,
          "model": group[0].model, "n": len(group),
          "spotted": sum(r.judged_synthetic == r.is_synthetic for r in group) / len(group)}
         for token, group in by_item.items()),
        key=lambda entry: (-entry["spotted"], entry["token"]),
    )
    return summary


RAW_COLUMNS = ("item_token", "physician", "is_synthetic", "judged_synthetic", "confidence", "likert", "comment",
               "seconds_on_item", "diagnosis_code", "chapter", "model", "variant")


def ratings_csv(study: Study) -> str:
    """The raw ratings as CSV; every cell goes through core.spreadsheet.csv_row_safe (no cell runs as a formula),
    while the JSON exports keep every value exactly."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    likert_keys = [q["key"] for q in study.questions.get("likert", [])]
    header = [c for c in RAW_COLUMNS if c != "likert"]
    writer.writerow(csv_row_safe(header + likert_keys))
    for row in rating_rows(study):
        data = asdict(row)
        writer.writerow(csv_row_safe([data[c] for c in header] + [row.likert.get(k, "") for k in likert_keys]))
    return buffer.getvalue()


def skips_csv(study: Study) -> str:
    """The skips with their reasons as CSV, every cell through csv_row_safe (a reason is free text)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(csv_row_safe(list(SKIP_COLUMNS)))
    for row in skip_rows(study):
        data = row.record()
        writer.writerow(csv_row_safe([data[column] for column in SKIP_COLUMNS]))
    return buffer.getvalue()


def bar_chart_svg(series: list[tuple[str, float, float]], *, title: str, max_value: float) -> SafeString:
    """Grouped horizontal bars: (label, real value, synthetic value) rows, drawn as plain SVG on the server.

    Labels and the title may come from users (a study's question labels, usernames): format_html escapes every
    value, so none can add markup; a long label is shortened on the chart and given whole in its tooltip."""
    row_height, left, width = 34, 170, 360
    rows = []
    for i, (label, real, synthetic) in enumerate(series):
        y = 30 + i * row_height
        rows.append(format_html('<text x="4" y="{}" font-size="12">{}<title>{}</title></text>', y + 18,
                                Truncator(str(label)).chars(26), label))
        for offset, value, colour, name in ((0, real, "#1a7f37", _("real")), (14, synthetic, "#c2410c",
                                                                             _("synthetic"))):
            bar = 0 if max_value == 0 else width * value / max_value
            rows.append(format_html(
                '<rect x="{}" y="{}" width="{}" height="12" fill="{}"><title>{}: {}</title></rect>'
                '<text x="{}" y="{}" font-size="10">{}</text>',
                left, y + offset, f"{bar:.1f}", colour, name, f"{value:.2f}", f"{left + bar + 4:.1f}", y + offset + 10,
                f"{value:.2f}"))
    return format_html('<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" role="img" aria-label="{}">'
                       '<text x="4" y="18" font-size="14" font-weight="600">{}</text>{}</svg>',
                       left + width + 70, 40 + row_height * len(series), title, title, svg_joined(rows))
