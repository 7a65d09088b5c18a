"""The rater service as it was before per-item claims (one study row lock), kept only to be measured against.

bench_rater_http.py starts a second gunicorn with _rater_baseline_gunicorn.py as its config file; its
post_worker_init hook calls install(), which points the rater API at these functions. They are the product's
assignment_next, do_submit_rating and do_skip_item (with the selectors and checks they called) as they stood at
commit 3a50d50: every next item, submit and skip of a study locks the study row (SELECT ... FOR UPDATE), so all
of them queue behind one another. Nothing in the product imports this module.
"""

from __future__ import annotations

import hashlib

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone
from django.utils.translation import gettext as _

from medsyn_site.core.audit import audit_write
from medsyn_site.core.models import AuditEvent
from review.assessment.models import Assignment, Rating, Study, StudyItem
from review.assessment.services import StudyStateError, _answers_clean, rater_blind_check


def _rater_listed(user) -> Q:
    return Q(physicians=None) | Q(physicians=user)


def studies_open_for_rater(user) -> QuerySet[Study]:
    return Study.objects.filter(state=Study.State.OPEN).filter(_rater_listed(user)).distinct()


def rater_listed_for(study: Study, user) -> bool:
    return Study.objects.filter(pk=study.pk).filter(_rater_listed(user)).exists()


def _lock(study: Study) -> Study:
    return Study.objects.select_for_update().get(pk=study.pk)


def _check_rater(study: Study, physician: AbstractBaseUser) -> None:
    if not physician.has_perm("medsyn_site.rate_notes"):
        raise PermissionDenied(_("Only physicians rate notes."))
    rater_blind_check(physician)
    if not rater_listed_for(study, physician):
        raise PermissionDenied(_("You are not a rater of this study."))


def _personal_start(study: Study, physician: AbstractBaseUser, draw: int) -> int:
    digest = hashlib.sha256(f"{study.pk}:{physician.pk}:{draw}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 2


def assignment_next(*, study: Study, physician: AbstractBaseUser) -> Assignment | None:
    _check_rater(study, physician)
    with transaction.atomic():
        locked = _lock(study)
        if locked.state != Study.State.OPEN:
            raise StudyStateError(_("The study is not open."))
        current = (Assignment.objects.select_related("item")
                   .filter(study=locked, physician=physician, status=Assignment.Status.ASSIGNED).first())
        if current is not None:
            return current
        eligible = (StudyItem.objects.filter(study=locked, active_assignments__lt=locked.overlap_k)
                    .exclude(assignments__physician=physician).order_by("rank"))
        start = _personal_start(locked, physician, Assignment.objects.filter(study=locked, physician=physician)
                                .count())
        item = eligible.filter(rank__gte=start).first() or eligible.filter(rank__lt=start).first()
        if item is None:
            return None
        StudyItem.objects.filter(pk=item.pk).update(active_assignments=F("active_assignments") + 1)
        return Assignment.objects.create(study=locked, item=item, physician=physician)


def do_submit_rating(*, study: Study, physician: AbstractBaseUser, token: str, answers: dict) -> Rating:
    _check_rater(study, physician)
    with transaction.atomic():
        locked = _lock(study)
        if locked.state != Study.State.OPEN:
            raise StudyStateError(_("The study is closed; answers can no longer change."))
        assignment = (Assignment.objects.select_for_update()
                      .filter(study=locked, physician=physician, item__token=token)
                      .exclude(status=Assignment.Status.SKIPPED).first())
        if assignment is None:
            raise PermissionDenied(_("This item is not assigned to you."))
        values = _answers_clean(locked, answers)
        now = timezone.now()
        rating = Rating.objects.filter(assignment=assignment).first()
        if rating is None:
            rating = Rating.objects.create(assignment=assignment, **values)
            assignment.status, assignment.answered_at = Assignment.Status.DONE, now
            assignment.seconds_on_item = (now - assignment.assigned_at).total_seconds()
            assignment.save(update_fields=["status", "answered_at", "seconds_on_item"])
            audit_write(actor=physician, action=AuditEvent.SUBMIT_RATING, obj=rating,
                        from_state=Assignment.Status.ASSIGNED, to_state=Assignment.Status.DONE,
                        extra={"study": locked.pk, "item": assignment.item_id})
        else:
            for field, value in values.items():
                setattr(rating, field, value)
            rating.revisions += 1
            rating.save()
            audit_write(actor=physician, action=AuditEvent.REVISE_RATING, obj=rating,
                        extra={"revision": rating.revisions})
        return rating


def do_skip_item(*, study: Study, physician: AbstractBaseUser, token: str, reason: str) -> Assignment:
    _check_rater(study, physician)
    if not reason.strip():
        raise ValidationError({"reason": _("say why you skip this note")})
    with transaction.atomic():
        locked = _lock(study)
        if locked.state != Study.State.OPEN:
            raise StudyStateError(_("The study is closed; items can no longer be skipped."))
        assignment = (Assignment.objects.select_for_update()
                      .filter(study=locked, physician=physician, item__token=token,
                              status=Assignment.Status.ASSIGNED).first())
        if assignment is None:
            raise PermissionDenied(_("This item is not your current item."))
        assignment.status, assignment.skip_reason = Assignment.Status.SKIPPED, reason.strip()[:500]
        assignment.answered_at = timezone.now()
        assignment.save(update_fields=["status", "skip_reason", "answered_at"])
        StudyItem.objects.filter(pk=assignment.item_id).update(active_assignments=F("active_assignments") - 1)
        audit_write(actor=physician, action=AuditEvent.SKIP_ITEM, obj=assignment, reason=assignment.skip_reason)
        return assignment


def install() -> None:
    """Point the rater API (review.assessment.api, which the URLconf imports later) at the functions above."""
    from review.assessment import api

    api.studies_open_for_rater = studies_open_for_rater
    api.assignment_next = assignment_next
    api.SubmitView.service = staticmethod(do_submit_rating)
    api.SkipView.service = staticmethod(do_skip_item)
