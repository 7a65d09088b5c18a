"""Reads of blind assessment: the studies a physician may rate."""

from __future__ import annotations

from django.db.models import Case, CharField, Count, Q, QuerySet, Value, When
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Coalesce
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from .blinding import LENGTH_BANDS
from .models import Assignment, Rating, Study

# The studies whose rater list admits a user (its one parameter: the user's id): a study with no rater list is open to
# every physician; otherwise the list must name the user. Written in SQL so that the rater service's locking read
# (services._rater_hold, which the ORM cannot write) checks the same rule, and because every rater request runs it:
# the ORM's join of the list needed a DISTINCT over whole study rows and cost more to build than to run.
RATER_LISTED_STUDIES_SQL = """
    SELECT listing.id FROM review_study listing
    WHERE NOT EXISTS (SELECT 1 FROM review_study_physicians rater WHERE rater.study_id = listing.id)
       OR EXISTS (SELECT 1 FROM review_study_physicians rater
                  WHERE rater.study_id = listing.id AND rater.user_id = %s)"""


def _rater_listed(user) -> Q:
    return Q(pk__in=RawSQL(RATER_LISTED_STUDIES_SQL, [user.pk]))


def studies_open_for_rater(user) -> QuerySet[Study]:
    """Open studies this user may rate."""
    return Study.objects.filter(state=Study.State.OPEN).filter(_rater_listed(user))


def rater_listed_for(study: Study, user) -> bool:
    return Study.objects.filter(pk=study.pk).filter(_rater_listed(user)).exists()


def rater_progress(study: Study, user) -> dict:
    """A physician's own progress in a study and the study's overall progress (k ratings per note)."""
    done = Assignment.objects.filter(study=study, physician=user, status=Assignment.Status.DONE).count()
    skipped = Assignment.objects.filter(study=study, physician=user, status=Assignment.Status.SKIPPED).count()
    items = study.items.count()
    overall = study_progress(study)
    return {"done": done, "skipped": skipped, "items": items, "total_done": overall["total_done"],
            "total_needed": overall["total_needed"], "percent": overall["percent"],
            "mine_percent": round(100 * (done + skipped) / items) if items else 0}


def study_progress(study: Study) -> dict:
    """Ratings given against ratings needed (every item k times)."""
    total_needed = study.items.count() * study.overlap_k
    total_done = Rating.objects.filter(assignment__study=study).count()
    return {"total_done": total_done, "total_needed": total_needed,
            "percent": round(100 * total_done / total_needed) if total_needed else 0}


def ratings_by_rater(study: Study, user, *, limit: int = 50) -> QuerySet[Rating]:
    """The physician's latest answers in a study, newest first (for revising them)."""
    return (Rating.objects.filter(assignment__study=study, assignment__physician=user)
            .select_related("assignment__item").order_by("-assignment__answered_at")[:limit])


def studies_listed() -> QuerySet[Study]:
    return Study.objects.annotate(n_items=Count("items", distinct=True))


def length_band_labels() -> list[tuple[str, str]]:
    """The length bands (blinding.LENGTH_BANDS) with their word counts in words, in order."""
    return [(name, _("%(low)s–%(high)s words") % {"low": low, "high": high} if high < 10**9
             else _("%(low)s words or more") % {"low": low}) for low, high, name in LENGTH_BANDS]


def study_pool_summary(study: Study) -> dict:
    """What the study's pool holds: notes by origin, ICD-10 categories, and per origin and generation model the notes,
    their categories and their length bands (for the study page's sentence and table)."""
    bands = [band[2] for band in LENGTH_BANDS]
    # Real notes are one group whatever their metadata says; a synthetic note without a model name is "".
    model = Case(When(is_synthetic=True, then=Coalesce(KeyTextTransform("generation_model", "note__metadata"),
                                                       Value(""))), default=Value(""), output_field=CharField())
    items = study.items.annotate(model=model)
    groups = {(entry["is_synthetic"], entry["model"]): {**entry, "bands": dict.fromkeys(bands, 0)}
              for entry in items.values("is_synthetic", "model").order_by("is_synthetic", "model")
              .annotate(notes=Count("id"), codes=Count("diagnosis_code", distinct=True))}
    for entry in items.values("is_synthetic", "model", "length_band").annotate(notes=Count("id")).order_by():
        groups[(entry["is_synthetic"], entry["model"])]["bands"][entry["length_band"]] = entry["notes"]
    rows = [dict(group, bands=list(group["bands"].values())) for group in groups.values()]
    real = sum(row["notes"] for row in rows if not row["is_synthetic"])
    synthetic = sum(row["notes"] for row in rows if row["is_synthetic"])
    summary = {"notes": real + synthetic, "real": real, "synthetic": synthetic,
               "codes": study.items.values("diagnosis_code").distinct().count(), "rows": rows,
               "bands": [label for _name, label in length_band_labels()]}
    summary["sentences"] = _pool_sentences(summary, study.pool_report or {})
    return summary


def _pool_sentences(pool: dict, report: dict) -> list[str]:
    """The pool and how it was built, in words (report: Study.pool_report, as services.do_build_study_pool wrote it;
    older reports may lack some keys)."""
    if not pool["notes"]:
        return [_("The pool is empty: no synthetic note had a real note of its ICD-10 category.") if report
                else _("No pool has been built yet.")]
    sentences = [_("The pool holds %(notes)s: %(real)s real and %(synthetic)s synthetic, over %(codes)s.") % {
        "notes": ngettext("%(n)s note", "%(n)s notes", pool["notes"]) % {"n": pool["notes"]},
        "real": pool["real"], "synthetic": pool["synthetic"],
        "codes": ngettext("%(n)s ICD-10 category", "%(n)s ICD-10 categories", pool["codes"]) % {"n": pool["codes"]}}]
    if "matched_category_and_band" in report:
        sentences.append(_("Matched pairs: %(pairs)s; %(exact)s of them have the same ICD-10 category and length band, "
                           "%(other)s only the same category.") % {
            "pairs": report.get("pairs", pool["synthetic"]), "exact": report["matched_category_and_band"],
            "other": report.get("matched_category_only", 0)})
    if report.get("short_of_request"):
        sentences.append(_("%(requested)s notes per origin were asked for, %(short)s fewer were found: not enough "
                           "synthetic notes have a real note of the same ICD-10 category.") % {
            "requested": report.get("requested_per_origin"), "short": report["short_of_request"]})
    chosen = report.get("synthetic_filter") or {}
    filters = [text % {"values": ", ".join(map(str, chosen[key]))} for key, text in (
        ("models", _("the models %(values)s")), ("variants", _("the prompt variants %(values)s")),
        ("job_ids", _("the generation jobs %(values)s"))) if chosen.get(key)]
    sentences.append(_("Synthetic notes were taken only from %(filters)s.") % {"filters": "; ".join(filters)}
                     if filters else _("Synthetic notes were taken from every model, prompt variant and job."))
    if report.get("failed_checks_included"):
        sentences.append(_("Synthetic notes that failed their automatic checks or were flagged by a curation scan "
                           "were taken on purpose."))
    elif left_out := report.get("failed_checks_left_out"):
        sentences.append(ngettext(
            "%(n)s synthetic note was left out: it failed its automatic checks or was flagged by a curation scan.",
            "%(n)s synthetic notes were left out: they failed their automatic checks or were flagged by a curation "
            "scan.", left_out) % {"n": left_out})
    if "seed" in report:
        sentences.append(_("Random seed: %(seed)s.") % {"seed": report["seed"]})
    return sentences
