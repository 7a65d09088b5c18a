"""Per-item claims (services.assignment_next) against the real PostgreSQL, one connection per physician: exact
overlap k, no (item, physician) twice, no lock of the whole study, and the database's own guards."""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Q

from review.assessment.models import Assignment, Rating, Study, StudyItem
from review.assessment.services import (
    StudyStateError,
    SyntheticFilter,
    assignment_next,
    do_build_study_pool,
    do_close_study,
    do_create_study,
    do_open_study,
    do_skip_item,
    do_submit_rating,
)

ANSWERS = {"origin": "real", "confidence": 3, "realism": 4, "plausibility": 4, "consistency": 3, "language": 4}
LAST_RANK = 2**62 - 1  # StudyItem.rank and the personal starts are below 2**62: from any start, this item comes first


def _open_study(make_user, *, n: int, k: int) -> tuple[Study, object]:
    curator = make_user("curator")
    study = do_create_study(actor=curator, name=f"claims {n} {k}", overlap_k=k)
    do_build_study_pool(actor=curator, study=study, n_per_origin=n, seed=3, synthetic=SyntheticFilter())
    do_open_study(actor=curator, study=study)
    study.refresh_from_db()
    return study, curator


def _ranks_set(study: Study, first: StudyItem) -> None:
    """`first` ranks last and every other item below any personal start, so every physician's first draw is `first`
    and their next one wraps around to the lowest rank."""
    for low, item in enumerate(study.items.exclude(pk=first.pk).order_by("pk")):
        StudyItem.objects.filter(pk=item.pk).update(rank=low)
    StudyItem.objects.filter(pk=first.pk).update(rank=LAST_RANK)


def _backend_pid() -> int:
    connection.ensure_connection()
    return connection.connection.info.backend_pid


def _waits_for_a_lock(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT wait_event_type FROM pg_stat_activity WHERE pid = %s", [pid])
        row = cursor.fetchone()
    return bool(row) and row[0] == "Lock"


def _until_waiting(future, pid: list[int]) -> None:
    """Until the other connection waits for a lock (or, wrongly, has finished without waiting)."""
    deadline = time.monotonic() + 60
    while not future.done() and not (pid and _waits_for_a_lock(pid[0])):
        assert time.monotonic() < deadline, "the other request neither finished nor waited"
        time.sleep(0.01)


class HeldClaim:
    """A physician's next-item call inside a transaction that stays open until release(): their claim (the item's row
    lock, the study's KEY SHARE lock) is in flight for as long as the test needs."""

    def __init__(self, pool: ThreadPoolExecutor, study: Study, physician) -> None:
        self.claimed, self.may_commit = threading.Event(), threading.Event()
        self.future = pool.submit(self._run, study, physician)
        assert self.claimed.wait(60), "the held claim did not happen"

    def _run(self, study: Study, physician) -> Assignment:
        try:
            with transaction.atomic():
                assignment = assignment_next(study=study, physician=physician)
                self.claimed.set()
                assert self.may_commit.wait(120)
            return assignment
        finally:
            self.claimed.set()
            connection.close()

    def release(self) -> Assignment:
        self.may_commit.set()
        return self.future.result(timeout=60)


def _in_own_connection(pid: list[int], call):
    def run():
        try:
            pid.append(_backend_pid())
            return call()
        finally:
            connection.close()

    return run


@pytest.mark.django_db(transaction=True)
def test_physicians_claiming_skipping_and_rating_at_once_bring_every_item_to_exactly_k(make_user, note_pool):
    study, _ = _open_study(make_user, n=18, k=5)
    doctors = [make_user("physician") for _ in range(14)]
    errors: list[BaseException] = []
    draws: Counter[int] = Counter()

    def rate_until_nothing_left(number: int, doctor, barrier: threading.Barrier) -> None:
        try:
            barrier.wait()
            while (assignment := assignment_next(study=study, physician=doctor)) is not None:
                draws[number] += 1
                if (draws[number] + number) % 6 == 0:  # every sixth item back to the pool for the others
                    do_skip_item(study=study, physician=doctor, token=assignment.item.token, reason="unreadable")
                else:
                    do_submit_rating(study=study, physician=doctor, token=assignment.item.token, answers=ANSWERS)
        except BaseException as error:  # collected and re-raised in the main thread
            errors.append(error)
        finally:
            connection.close()

    # Rounds, as physicians come back later: a physician told "nothing left" while someone else held an item's last
    # slot is offered that item once it is skipped. Rounds end when a whole round hands out nothing.
    while True:
        before = sum(draws.values())
        barrier = threading.Barrier(len(doctors))
        threads = [threading.Thread(target=rate_until_nothing_left, args=(number, doctor, barrier))
                   for number, doctor in enumerate(doctors)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=300)
        assert not any(thread.is_alive() for thread in threads)
        assert not errors, errors
        if sum(draws.values()) == before:
            break
    items = study.items.count()
    assert items == 36
    per_item = Counter(Rating.objects.filter(assignment__study=study).values_list("assignment__item", flat=True))
    assert len(per_item) == items and set(per_item.values()) == {5}  # every item reached k, none went past it
    pairs = list(Assignment.objects.filter(study=study).values_list("item", "physician"))
    assert len(pairs) == len(set(pairs))  # no physician saw an item twice, skipped ones included
    skipped = Assignment.objects.filter(study=study, status=Assignment.Status.SKIPPED).count()
    assert skipped > 0 and len(pairs) == items * 5 + skipped
    counted = study.items.annotate(active=Count("assignments", filter=~Q(assignments__status="skipped")))
    assert not counted.exclude(active_assignments=F("active")).exists()  # the claim counter matches the rows
    assert not Assignment.objects.filter(study=study, status=Assignment.Status.ASSIGNED).exists()


@pytest.mark.django_db(transaction=True)
def test_a_claim_in_flight_is_passed_over_not_waited_for(make_user, note_pool):
    """No lock of the whole study: while one physician's claim of an item is uncommitted, another physician whose
    order starts at the same item gets the next one in their order at once."""
    study, _ = _open_study(make_user, n=3, k=2)
    first = study.items.order_by("pk").first()
    _ranks_set(study, first)
    holder, other = make_user("physician"), make_user("physician")
    with ThreadPoolExecutor(2) as pool:
        held = HeldClaim(pool, study, holder)
        pid: list[int] = []
        got = pool.submit(_in_own_connection(pid, lambda: assignment_next(study=study, physician=other)))
        mine = got.result(timeout=60)  # answered while the holder's transaction is still open
        assert not held.future.done()
        assert held.release().item_id == first.pk
    assert mine.item_id != first.pk and mine.item.rank == 0  # passed over, wrapped around to the lowest rank


@pytest.mark.django_db(transaction=True)
def test_nothing_left_is_not_said_while_a_claim_is_in_flight(make_user, note_pool):
    """When the only item left for a physician is being claimed by someone else, they wait for that claim and get
    the item's remaining slot, instead of being told the study has nothing left for them."""
    study, _ = _open_study(make_user, n=1, k=2)
    late, holder = make_user("physician"), make_user("physician")
    rated = assignment_next(study=study, physician=late)
    do_submit_rating(study=study, physician=late, token=rated.item.token, answers=ANSWERS)
    last = study.items.exclude(pk=rated.item_id).get()
    _ranks_set(study, last)
    with ThreadPoolExecutor(2) as pool:
        held = HeldClaim(pool, study, holder)
        pid: list[int] = []
        got = pool.submit(_in_own_connection(pid, lambda: assignment_next(study=study, physician=late)))
        _until_waiting(got, pid)
        assert not got.done()
        assert held.release().item_id == last.pk
        assert got.result(timeout=60).item_id == last.pk
    last.refresh_from_db()
    assert last.active_assignments == 2


@pytest.mark.django_db(transaction=True)
def test_one_physicians_requests_at_once_share_one_current_item(make_user, note_pool):
    study, _ = _open_study(make_user, n=3, k=2)
    doctor = make_user("physician")
    barrier = threading.Barrier(4)

    def next_item() -> int:
        try:
            barrier.wait()
            return assignment_next(study=study, physician=doctor).pk
        finally:
            connection.close()

    with ThreadPoolExecutor(4) as pool:
        answers = [future.result(timeout=60) for future in [pool.submit(next_item) for _ in range(4)]]
    assert len(set(answers)) == 1
    assert Assignment.objects.filter(study=study, physician=doctor).count() == 1
    assert study.items.filter(active_assignments=1).count() == 1


@pytest.mark.django_db(transaction=True)
def test_closing_waits_for_answers_in_flight_and_refuses_later_ones(make_user, note_pool):
    study, curator = _open_study(make_user, n=3, k=2)
    doctor = make_user("physician")
    with ThreadPoolExecutor(2) as pool:
        held = HeldClaim(pool, study, doctor)
        pid: list[int] = []
        closing = pool.submit(_in_own_connection(pid, lambda: do_close_study(actor=curator, study=study)))
        _until_waiting(closing, pid)
        assert not closing.done()  # the close waits for the physician's transaction
        assignment = held.release()
        assert closing.result(timeout=60).state == Study.State.CLOSED
    with pytest.raises(StudyStateError):
        do_submit_rating(study=study, physician=doctor, token=assignment.item.token, answers=ANSWERS)
    with pytest.raises(StudyStateError):
        assignment_next(study=study, physician=doctor)


def test_the_database_holds_claims_to_k_and_a_physician_to_one_current_item(make_user, note_pool):
    study, _ = _open_study(make_user, n=3, k=2)
    assert set(study.items.values_list("slots", flat=True)) == {2}
    item = study.items.first()
    with pytest.raises(IntegrityError), transaction.atomic():
        StudyItem.objects.filter(pk=item.pk).update(active_assignments=F("slots") + 1)
    doctor = make_user("physician")
    current = assignment_next(study=study, physician=doctor)
    with pytest.raises(IntegrityError), transaction.atomic():
        Assignment.objects.create(study=study, item=study.items.exclude(pk=current.item_id).first(), physician=doctor)
    claimed = StudyItem.objects.get(pk=current.item_id)
    assert claimed.active_assignments == 1
    do_skip_item(study=study, physician=doctor, token=claimed.token, reason="not mine")
    claimed.refresh_from_db()
    assert claimed.active_assignments == 0  # the skip gave the claim back


def test_a_physician_off_the_rater_list_may_not_answer_or_skip_either(make_user, note_pool):
    curator = make_user("curator")
    study = do_create_study(actor=curator, name="listed claims", overlap_k=2)
    do_build_study_pool(actor=curator, study=study, n_per_origin=2, seed=4)
    listed, other = make_user("physician"), make_user("physician")
    do_open_study(actor=curator, study=study, physicians=[listed])
    token = assignment_next(study=study, physician=listed).item.token
    for refused in (lambda: assignment_next(study=study, physician=other),
                    lambda: do_submit_rating(study=study, physician=other, token=token, answers=ANSWERS),
                    lambda: do_skip_item(study=study, physician=other, token=token, reason="not mine")):
        with pytest.raises(PermissionDenied, match="not a rater of this study"):
            refused()
    assert not Assignment.objects.filter(physician=other).exists()
