"""Writes of the assessment protocol. Every state change is one do_<verb>_<noun> action that writes its
audit record in the same transaction (STYLE.md)."""

from __future__ import annotations

import hashlib
import random
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.translation import gettext as _
from psycopg.types.json import Jsonb

from generation.models import Note
from medsyn_site.core.audit import audit_write
from medsyn_site.core.errors import StateConflict
from medsyn_site.core.icd10 import icd_category_names
from medsyn_site.core.models import AuditEvent
from medsyn_site.roles import sees_origins
from review.curation.selectors import FLAGGED, OVERRIDDEN

from .blinding import length_band, rater_text
from .models import Assignment, Rating, Study, StudyItem
from .origin_probe import origin_probe
from .results import RAW_COLUMNS
from .selectors import RATER_LISTED_STUDIES_SQL

DEFAULT_QUESTIONS: dict = {
    "origin": {"label": "Was this note written by a clinician or generated?", "choices": ["real", "synthetic"]},
    "confidence": {"label": "How confident are you? (1 = guessing, 5 = certain)", "min": 1, "max": 5},
    "likert": [
        {"key": "realism", "label": "Realism"},
        {"key": "plausibility", "label": "Medical plausibility"},
        {"key": "consistency", "label": "Consistency with the stated diagnosis"},
        {"key": "language", "label": "Language quality"},
    ],
    "comment": {"label": "Comment (optional)"},
}


class StudyStateError(StateConflict):
    """The action is not allowed in the study's current state."""


class NotARater(PermissionDenied):
    """The study's rater list does not name the physician."""


LIKERT_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
# Names a Likert key may not take: the rating form's own fields and every column of the rating exports.
RESERVED_KEYS = frozenset({"origin", "token", "confidence", "is_synthetic", "judged_synthetic", "comment", "physician",
                           "likert", "reason", "answers", "csrfmiddlewaretoken", *RAW_COLUMNS})
LABEL_MAX = 300


def _label_check(value: object, where: str) -> None:
    if not isinstance(value, str) or not value.strip() or len(value) > LABEL_MAX:
        raise ValidationError(_("%(where)s needs a label: text of 1 to %(max)s characters.")
                              % {"where": where, "max": LABEL_MAX})


def question_key_check(key: object) -> None:
    """A Likert question's key: identifier-like (it names a form field and an export column) and not reserved."""
    if not isinstance(key, str) or not LIKERT_KEY.match(key):
        raise ValidationError(_("Likert question key %(key)s is not allowed: a key is a lower-case letter followed "
                                "by up to 39 lower-case letters, digits or _ (the label is free text).")
                              % {"key": repr(key)})
    if key in RESERVED_KEYS:
        raise ValidationError(_("Likert question key %(key)s is reserved (it names an answer of the rating form or a "
                                "column of the exports); choose another key.") % {"key": repr(key)})


def question_key_duplicate(key: str) -> ValidationError:
    return ValidationError(_("Likert question keys must be unique (%(key)s is used twice).") % {"key": repr(key)})


def _likert_key_check(key: object, seen: set[str]) -> None:
    question_key_check(key)
    if key in seen:
        raise question_key_duplicate(key)
    seen.add(key)


def _required_check(question: dict, where: str) -> None:
    if not isinstance(question.get("required", True), bool):
        raise ValidationError(_("%(where)s: required is true or false.") % {"where": where})


def questions_validate(questions: dict) -> dict:
    """The question set, checked: origin and confidence with labels, Likert questions {key, label} with
    identifier-like, unique, unreserved keys and an optional required flag (true when absent), a comment with an
    optional required flag (false when absent). Labels are free text (always escaped where shown)."""
    if not isinstance(questions, dict):
        raise ValidationError(_("The question set must be a JSON object with origin, confidence and likert."))
    likert = questions.get("likert")
    if not isinstance(likert, list) or not all(isinstance(q, dict) for q in likert):
        raise ValidationError(_("questions.likert must be a list of {key, label}"))
    seen: set[str] = set()
    for question in likert:
        _likert_key_check(question.get("key"), seen)
        _label_check(question.get("label"), f"questions.likert.{question['key']}")
        _required_check(question, f"questions.likert.{question['key']}")
    for part in ("origin", "confidence"):
        if not isinstance(questions.get(part), dict):
            raise ValidationError(_("questions.%(part)s needs a label") % {"part": part})
        _label_check(questions[part].get("label"), f"questions.{part}")
    if "comment" in questions and (not isinstance(questions["comment"], dict)
                                   or not isinstance(questions["comment"].get("label", ""), str)):
        raise ValidationError(_("questions.comment must be an object with a text label"))
    if "comment" in questions and not isinstance(questions["comment"].get("required", False), bool):
        raise ValidationError(_("%(where)s: required is true or false.") % {"where": "questions.comment"})
    return questions


@transaction.atomic
def do_create_study(*, actor: AbstractBaseUser, name: str, instructions: str = "", overlap_k: int = 3,
                    questions: dict | None = None) -> Study:
    study = Study(name=name, instructions=instructions, overlap_k=overlap_k,
                  questions=questions_validate(questions or DEFAULT_QUESTIONS), created_by=actor)
    study.full_clean()
    study.save()
    audit_write(actor=actor, action=AuditEvent.CREATE_STUDY, obj=study, to_state=study.state)
    return study


def _lock(study: Study) -> Study:
    return Study.objects.select_for_update().get(pk=study.pk)


@transaction.atomic
def do_update_study_questions(*, actor: AbstractBaseUser, study: Study, questions: dict) -> Study:
    study = _lock(study)
    if study.state != Study.State.DRAFT:
        raise StudyStateError(_("The question set is frozen once the study is open."))
    study.questions = questions_validate(questions)
    study.save(update_fields=["questions"])
    audit_write(actor=actor, action=AuditEvent.UPDATE_STUDY_QUESTIONS, obj=study, extra={"questions": questions})
    return study


@dataclass(frozen=True)
class SyntheticFilter:
    job_ids: tuple[int, ...] = ()
    models: tuple[str, ...] = ()
    variants: tuple[str, ...] = ()

    def accepts(self, note: Note) -> bool:
        meta = note.metadata or {}
        return ((not self.job_ids or meta.get("job_id") in self.job_ids)
                and (not self.models or meta.get("generation_model") in self.models)
                and (not self.variants or meta.get("prompt_variant") in self.variants))


# A synthetic note that failed its automatic checks (generation.checks, stored in metadata["checks"]) or that a
# curation scan flagged as a near duplicate or a memorised real note (flag not overridden).
FAILED_CHECKS = Q(metadata__checks__passed=False) | (FLAGGED & ~OVERRIDDEN)


def _synthetic_candidates(synthetic: SyntheticFilter, include_failed_checks: bool) -> tuple[list[Note], int]:
    """The synthetic notes the filter accepts, in id order, and how many were left out for failed checks."""
    notes = Note.objects.filter(origin=Note.Origin.SYNTHETIC).order_by("id")
    accepted = [n for n in notes if synthetic.accepts(n)]
    if include_failed_checks:
        return accepted, 0
    failed = set(notes.filter(FAILED_CHECKS).values_list("pk", flat=True))
    kept = [n for n in accepted if n.pk not in failed]
    return kept, len(accepted) - len(kept)


def _matched_pairs(candidates: list[Note], n_per_origin: int, rng: random.Random) -> list[tuple[Note, Note, bool]]:
    """(synthetic, real, same length band) pairs; see do_build_study_pool."""
    reals: dict[str, dict[str, list[Note]]] = defaultdict(lambda: defaultdict(list))
    real_notes = list(Note.objects.filter(origin=Note.Origin.REAL, icd_category__in={n.icd_category
                                                                                      for n in candidates})
                      .order_by("id"))
    rng.shuffle(real_notes)
    for note in real_notes:
        reals[note.icd_category][length_band(note.text)].append(note)
    pairs: list[tuple[Note, Note, bool]] = []
    for note in candidates:
        if len(pairs) == n_per_origin:
            break
        bands = reals.get(note.icd_category)
        if not bands:
            continue
        band = length_band(note.text)
        if bands.get(band):
            pairs.append((note, bands[band].pop(), True))
        else:
            other = next((b for b in sorted(bands) if bands[b]), None)
            if other is not None:
                pairs.append((note, bands[other].pop(), False))
    return pairs


def blinding_report(items: list[StudyItem], seed: int) -> dict:
    """How many notes of each origin the normaliser changed, and how well a classifier tells origin from the raw,
    normalised and content-only texts (origin_probe)."""
    normaliser = {}
    for origin, flag in (("real", False), ("synthetic", True)):
        mine = [item for item in items if item.is_synthetic == flag]
        normaliser[origin] = {"notes": len(mine), "changed": sum(item.display_text != item.note.text for item in mine)}
    probe = origin_probe([item.note.text for item in items], [item.display_text for item in items],
                         [item.is_synthetic for item in items], seed=seed)
    return {"normaliser": normaliser, "origin_probe": probe}


@transaction.atomic
def do_build_study_pool(*, actor: AbstractBaseUser, study: Study, n_per_origin: int, seed: int,
                        synthetic: SyntheticFilter = SyntheticFilter(),
                        diagnosis_names: dict[str, str] | None = None, include_failed_checks: bool = False) -> dict:
    """N real and N synthetic notes matched by ICD category and length band; the remaining mismatch is reported.

    Each synthetic note (in seeded random order) takes an unused real note of the same category and
    length band, or failing that of the same category in another band; a synthetic note with no real
    partner of its category is not used. Synthetic notes that failed their automatic checks (FAILED_CHECKS)
    stay out unless include_failed_checks says to take them on purpose. The study's blinding report
    (blinding_report) is measured on the new pool.
    """
    study = _lock(study)
    if study.state != Study.State.DRAFT:
        raise StudyStateError(_("The pool can only be built while the study is a draft."))
    rng = random.Random(seed)
    candidates, excluded = _synthetic_candidates(synthetic, include_failed_checks)
    rng.shuffle(candidates)
    pairs = _matched_pairs(candidates, n_per_origin, rng)
    names = diagnosis_names or {}
    study.items.all().delete()
    items = []
    for synthetic_note, real_note, _exact in pairs:
        for note in (synthetic_note, real_note):
            items.append(StudyItem(
                study=study, note=note, display_text=rater_text(note.text), diagnosis_code=note.icd_category,
                diagnosis_name=names.get(note.icd_category, ""), is_synthetic=note.origin == Note.Origin.SYNTHETIC,
                length_band=length_band(note.text), slots=study.overlap_k,
            ))
    rng.shuffle(items)
    StudyItem.objects.bulk_create(items)
    exact = sum(1 for *_, same_band in pairs if same_band)
    study.pool_report = {
        "requested_per_origin": n_per_origin, "pairs": len(pairs), "matched_category_and_band": exact,
        "matched_category_only": len(pairs) - exact, "short_of_request": n_per_origin - len(pairs), "seed": seed,
        "synthetic_filter": {"job_ids": list(synthetic.job_ids), "models": list(synthetic.models),
                             "variants": list(synthetic.variants)},
        "failed_checks_included": include_failed_checks, "failed_checks_left_out": excluded,
    }
    study.blinding_report = blinding_report(items, seed)
    study.save(update_fields=["pool_report", "blinding_report"])
    audit_write(actor=actor, action=AuditEvent.BUILD_STUDY_POOL, obj=study,
                extra={**study.pool_report, "blinding": study.blinding_report})
    return study.pool_report


@transaction.atomic
def do_set_up_study(*, actor: AbstractBaseUser, name: str, instructions: str, overlap_k: int, n_per_origin: int,
                    seed: int, synthetic: SyntheticFilter = SyntheticFilter(),
                    include_failed_checks: bool = False) -> Study:
    """A new draft study with its matched pool, both or neither (the study form's one action)."""
    study = do_create_study(actor=actor, name=name, instructions=instructions, overlap_k=overlap_k)
    do_build_study_pool(actor=actor, study=study, n_per_origin=n_per_origin, seed=seed, synthetic=synthetic,
                        diagnosis_names=icd_category_names(), include_failed_checks=include_failed_checks)
    study.refresh_from_db()
    return study


@transaction.atomic
def do_open_study(*, actor: AbstractBaseUser, study: Study, physicians: Iterable[AbstractBaseUser] = ()) -> Study:
    study = _lock(study)
    if study.state != Study.State.DRAFT:
        raise StudyStateError(_("Only a draft study can be opened (this one is %(state)s).")
                              % {"state": study.get_state_display()})
    if not study.items.exists():
        raise StudyStateError(_("Build the pool before opening the study."))
    physicians = list(physicians)
    not_blind = sorted(p.get_username() for p in physicians if sees_origins(p))
    if not_blind:
        raise ValidationError(_("These people can see notes' origins and so cannot rate blind: %(names)s.")
                              % {"names": ", ".join(not_blind)})
    if physicians:
        study.physicians.set(physicians)
    study.state, study.opened_at = Study.State.OPEN, timezone.now()
    study.save(update_fields=["state", "opened_at"])
    audit_write(actor=actor, action=AuditEvent.OPEN_STUDY, obj=study, from_state="draft", to_state="open",
                extra={"physicians": [p.pk for p in physicians]})
    return study


@transaction.atomic
def do_close_study(*, actor: AbstractBaseUser, study: Study) -> Study:
    study = _lock(study)
    if study.state != Study.State.OPEN:
        raise StudyStateError(_("Only an open study can be closed (this one is %(state)s).")
                              % {"state": study.get_state_display()})
    study.state, study.closed_at = Study.State.CLOSED, timezone.now()
    study.save(update_fields=["state", "closed_at"])
    audit_write(actor=actor, action=AuditEvent.CLOSE_STUDY, obj=study, from_state="open", to_state="closed")
    return study


def rater_blind_check(user: AbstractBaseUser) -> None:
    """Refuse a rater who can see notes' origins (medsyn_site.roles.sees_origins): their answers would not be blind."""
    if sees_origins(user):
        raise PermissionDenied(_("You can see notes' origins (results, curation, generated notes, study pools or "
                                 "releases), so you cannot rate in blind studies. Ratings are given by physicians "
                                 "who see none of these."))


def _check_rater(physician: AbstractBaseUser) -> None:
    if not physician.has_perm("medsyn_site.rate_notes"):
        raise PermissionDenied(_("Only physicians rate notes."))
    rater_blind_check(physician)


def _personal_start(study: Study, physician: AbstractBaseUser, draw: int) -> int:
    digest = hashlib.sha256(f"{study.pk}:{physician.pk}:{draw}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 2  # the same 62-bit range as StudyItem.rank


# The rater's requests (next item, submit, skip) are the product's busiest: a multi-site study has hundreds of
# physicians. They run a few short statements written out below rather than built by the ORM, whose building of a
# query costs more CPU than the database's work on it; everything else stays in the ORM.

_INT4 = 0x7FFFFFFF  # pg_advisory_xact_lock(int4, int4): ids folded into its key range (a clash only waits)

_HOLD_SQL = f"""
    SELECT study.id, study.state, study.overlap_k, study.questions,
           study.id IN ({RATER_LISTED_STUDIES_SQL}) AS listed
    FROM review_study study, pg_advisory_xact_lock(%s, %s)
    WHERE study.id = %s
    FOR KEY SHARE OF study"""


def _rater_hold(study: Study, physician: AbstractBaseUser) -> Study:
    """The study (state, k, questions) for a physician who is one of its raters, read under two locks held to the
    end of the caller's transaction; Study.DoesNotExist when there is no such study, NotARater when it does not list
    them (so the caller may pass Study(pk=...) unread: the rater API does).

    - FOR KEY SHARE on the study row: raters do not block one another with it, but do_close_study (FOR UPDATE)
      waits for the answers in flight, and an answer sent while the study closes waits and then sees it closed.
    - An advisory lock on (study, physician): one physician's requests in a study (two tabs, a double click) run one
      after another, as they did when every request locked the study row; different physicians' run side by side.
    """
    held = next(iter(Study.objects.raw(_HOLD_SQL, [physician.pk, study.pk & _INT4, physician.pk & _INT4, study.pk])),
                None)
    if held is None:
        raise Study.DoesNotExist
    if not held.listed:
        raise NotARater(_("You are not a rater of this study."))
    return held


# How many items the physician has drawn in the study, and their current one. A statement of its own, after
# _HOLD_SQL: it must see what the physician's previous request committed while this one waited for the advisory lock.
_MINE_SQL = """
    SELECT count(*), max(id) FILTER (WHERE status = 'assigned')
    FROM review_assignment WHERE study_id = %s AND physician_id = %s"""

# Claim the first eligible item from a rank onwards (or before it, for the wrap-around): one the physician has not
# seen and with a free slot. The claim counter rises under the item's row lock, which the claim holds to its commit;
# the check constraint study_item_claims_within_k refuses a claim past k whatever happens. {wait} is SKIP LOCKED
# (pass over an item someone else is claiming at this very moment) or empty (wait for that claim to commit). The same
# statement makes the physician's assignment of the item (its constraints refuse a second one of the item, or a second
# current item), and answers the item with the assignment's id and time.
_CLAIM_SQL = """
    WITH claimed AS (
    UPDATE review_studyitem SET active_assignments = active_assignments + 1
    WHERE id = (
        SELECT item.id FROM review_studyitem item
        WHERE item.study_id = %(study)s AND item.rank {direction} %(start)s AND item.active_assignments < item.slots
          AND NOT EXISTS (SELECT 1 FROM review_assignment seen
                          WHERE seen.item_id = item.id AND seen.physician_id = %(physician)s)
        ORDER BY item.rank
        LIMIT 1
        FOR NO KEY UPDATE {wait})
    RETURNING *),
    assigned AS (
        INSERT INTO review_assignment (study_id, item_id, physician_id, status, skip_reason, assigned_at)
        SELECT claimed.study_id, claimed.id, %(physician)s, 'assigned', '', %(now)s FROM claimed
        RETURNING id AS assignment_id, item_id, assigned_at)
    SELECT claimed.*, assigned.assignment_id, assigned.assigned_at
    FROM claimed JOIN assigned ON assigned.item_id = claimed.id"""


def _item_claim(study: Study, physician: AbstractBaseUser, start: int) -> Assignment | None:
    """The physician's assignment of the first eligible item from start in rank order (wrapping around), claimed.

    The first pass passes over items being claimed by others at this moment, so raters never queue behind one
    another. Only when it finds nothing (the study is nearly done, or every free item is being claimed right now)
    does a second pass wait for those claims to commit: "nothing left" is never said of an item with a free slot.
    """
    params = {"study": study.pk, "start": start, "physician": physician.pk, "now": timezone.now()}
    for wait in ("SKIP LOCKED", ""):
        for direction in (">=", "<"):
            claimed = next(iter(StudyItem.objects.raw(_CLAIM_SQL.format(direction=direction, wait=wait), params)),
                           None)
            if claimed is not None:
                assignment = Assignment(id=claimed.assignment_id, study_id=study.pk, item=claimed,
                                        physician=physician, status=Assignment.Status.ASSIGNED,
                                        assigned_at=claimed.assigned_at)
                assignment._state.adding, assignment._state.db = False, claimed._state.db  # as read from the database
                return assignment
    return None


def assignment_next(*, study: Study, physician: AbstractBaseUser) -> Assignment | None:
    """The physician's current item, or a new one in their personal random order; None when nothing is left.

    Personal order: the n-th draw of a physician starts at a position hashed from (study, physician, n)
    in the items' random ranks and takes the first eligible item from there (wrapping around). This is
    random per physician, reproducible, and walks the (study, rank) index instead of sorting the pool.
    Items are claimed one at a time, not under a lock of the whole study: the claim (_item_claim) locks the item's
    row, passes over items other physicians are claiming at that moment, and counts the claim against the item's
    k slots, so concurrent requests never give one item more than k active assignments. An item a physician has
    seen (rated or skipped) never comes back to them.
    """
    _check_rater(physician)
    with transaction.atomic():
        held = _rater_hold(study, physician)
        if held.state != Study.State.OPEN:
            raise StudyStateError(_("The study is not open."))
        with connection.cursor() as cursor:
            cursor.execute(_MINE_SQL, [held.pk, physician.pk])
            draws, current = cursor.fetchone()
        if current is not None:
            return Assignment.objects.select_related("item").get(pk=current)
        return _item_claim(held, physician, _personal_start(held, physician, draws))


# The physician's assignment of the item with this token, locked (its rating's id too, NULL before the first answer):
# found through the unique token and the unique (item, physician).
_ASSIGNMENT_SQL = """
    SELECT assignment.*, rating.id AS rating_id
    FROM review_assignment assignment
    LEFT JOIN review_rating rating ON rating.assignment_id = assignment.id
    WHERE assignment.item_id = (SELECT item.id FROM review_studyitem item WHERE item.token = %(token)s)
      AND assignment.physician_id = %(physician)s AND assignment.study_id = %(study)s
      AND assignment.status = ANY(%(statuses)s)
    FOR NO KEY UPDATE OF assignment"""


def _assignment_held(study: Study, physician: AbstractBaseUser, token: str,
                     statuses: list[str]) -> Assignment | None:
    held = Assignment.objects.raw(_ASSIGNMENT_SQL, {"study": study.pk, "physician": physician.pk, "token": token,
                                                    "statuses": statuses})
    return next(iter(held), None)


def _answers_clean(study: Study, answers: dict) -> dict:
    errors = {}
    origin = answers.get("origin")
    if origin not in ("real", "synthetic"):
        errors["origin"] = _("choose real or synthetic")
    try:
        confidence = int(answers.get("confidence"))
        if not 1 <= confidence <= 5:
            raise ValueError
    except (TypeError, ValueError):
        errors["confidence"] = _("a whole number from 1 to 5")
        confidence = 0
    likert = {}
    for question in study.questions["likert"]:
        key = question["key"]
        if answers.get(key) in (None, "") and question.get("required", True) is False:
            continue  # an optional question left unanswered
        try:
            value = int(answers.get(key))
            if not 1 <= value <= 5:
                raise ValueError
            likert[key] = value
        except (TypeError, ValueError):
            errors[key] = _("a whole number from 1 to 5")
    comment = str(answers.get("comment") or "")[:5000]
    if study.questions.get("comment", {}).get("required") is True and not comment.strip():
        errors["comment"] = _("a comment is required")
    if errors:
        raise ValidationError(errors)
    return {"judged_synthetic": origin == "synthetic", "confidence": confidence, "likert": likert,
            "comment": comment}


# A first answer: the rating stored and the assignment done, in one statement.
_RATING_FIRST_SQL = """
    WITH done AS (
        UPDATE review_assignment SET status = %(status)s, answered_at = %(now)s, seconds_on_item = %(seconds)s
        WHERE id = %(assignment)s)
    INSERT INTO review_rating (assignment_id, judged_synthetic, confidence, likert, comment, revisions, updated_at)
    VALUES (%(assignment)s, %(judged_synthetic)s, %(confidence)s, %(likert)s, %(comment)s, 0, %(now)s)
    RETURNING id"""


def _rating_first(assignment: Assignment, values: dict, now) -> Rating:
    """Store the first rating of the assignment (already marked done, answered_at and seconds_on_item set on it) and
    write the assignment's new state, in one round trip: the rater's submit is the service's busiest write."""
    with connection.cursor() as cursor:
        cursor.execute(_RATING_FIRST_SQL, {
            "status": assignment.status, "now": now, "seconds": assignment.seconds_on_item,
            "assignment": assignment.pk, "judged_synthetic": values["judged_synthetic"],
            "confidence": values["confidence"], "likert": Jsonb(values["likert"]), "comment": values["comment"]})
        (rating_id,) = cursor.fetchone()
    rating = Rating(id=rating_id, assignment=assignment, revisions=0, updated_at=now, **values)
    rating._state.adding, rating._state.db = False, connection.alias  # as read from the database
    return rating


def do_submit_rating(*, study: Study, physician: AbstractBaseUser, token: str, answers: dict) -> Rating:
    """Record (or revise, until the study closes) the physician's answers for the item with this token."""
    _check_rater(physician)
    with transaction.atomic():
        held = _rater_hold(study, physician)
        if held.state != Study.State.OPEN:
            raise StudyStateError(_("The study is closed; answers can no longer change."))
        assignment = _assignment_held(held, physician, token, [Assignment.Status.ASSIGNED, Assignment.Status.DONE])
        if assignment is None:
            raise PermissionDenied(_("This item is not assigned to you."))
        values = _answers_clean(held, answers)
        now = timezone.now()
        if assignment.rating_id is None:
            assignment.status, assignment.answered_at = Assignment.Status.DONE, now
            assignment.seconds_on_item = (now - assignment.assigned_at).total_seconds()
            rating = _rating_first(assignment, values, now)
            audit_write(actor=physician, action=AuditEvent.SUBMIT_RATING, obj=rating,
                        from_state=Assignment.Status.ASSIGNED, to_state=Assignment.Status.DONE,
                        extra={"study": held.pk, "item": assignment.item_id})
        else:
            rating = Rating.objects.get(pk=assignment.rating_id)
            for field, value in values.items():
                setattr(rating, field, value)
            rating.revisions += 1
            rating.save()
            audit_write(actor=physician, action=AuditEvent.REVISE_RATING, obj=rating,
                        extra={"revision": rating.revisions})
        return rating


def do_skip_item(*, study: Study, physician: AbstractBaseUser, token: str, reason: str) -> Assignment:
    """Skip the current item with a reason; it goes back to the pool for another physician."""
    _check_rater(physician)
    if not reason.strip():
        raise ValidationError({"reason": _("say why you skip this note")})
    with transaction.atomic():
        held = _rater_hold(study, physician)
        if held.state != Study.State.OPEN:
            raise StudyStateError(_("The study is closed; items can no longer be skipped."))
        assignment = _assignment_held(held, physician, token, [Assignment.Status.ASSIGNED])
        if assignment is None:
            raise PermissionDenied(_("This item is not your current item."))
        assignment.status, assignment.skip_reason = Assignment.Status.SKIPPED, reason.strip()[:500]
        assignment.answered_at = timezone.now()  # when it was skipped (results.skip_rows)
        assignment.save(update_fields=["status", "skip_reason", "answered_at"])
        StudyItem.objects.filter(pk=assignment.item_id).update(active_assignments=F("active_assignments") - 1)
        audit_write(actor=physician, action=AuditEvent.SKIP_ITEM, obj=assignment, reason=assignment.skip_reason)
        return assignment
