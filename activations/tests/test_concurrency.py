"""Races that only a real database shows (SPEC 5): each ends with exactly one outcome.

PostgreSQL only (SQLite serialises everything). Every thread has its own connection and
closes it when done; the threads start together at a barrier.
"""

import logging
import threading
import time
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.utils import timezone

from accounts.services import user_deactivate
from activations import jobs, services
from activations.models import ActivationRequest, Approval, TransitionNotAllowed
from audit.models import AuditEvent
from roles.models import ActiveAssignment, DirectoryOperation, EligibleAssignment
from roles.selectors import user_holds_role
from roles.services import active_remove, eligible_remove, eligible_update
from tests.factories import DirectoryGroupFactory, UserFactory

from .helpers import HOUR, approve, eligible_for, reloaded, request_actions, request_activation, role_with

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

Status = ActivationRequest.Status
THREADS = 10


def run_concurrently(*targets):
    """Call every target at once, each from its own thread and connection; return their
    results (an exception counts as a result) in the order of the targets."""
    barrier = threading.Barrier(len(targets))
    results = [None] * len(targets)

    def worker(index, target):
        try:
            barrier.wait(timeout=30)
            results[index] = target()
        except Exception as error:  # the outcome is what the test inspects
            results[index] = error
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i, target)) for i, target in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck (deadlock?)"
    return results


def errors(results):
    return [result for result in results if isinstance(result, Exception)]


def successes(results):
    return [result for result in results if not isinstance(result, Exception)]


def holding(model, pk, seconds=0.3):
    """(held, hold): hold() locks the row for a moment in its own transaction (pg_sleep) and
    sets `held` once it has it, so the others line up behind it (see after)."""
    held = threading.Event()

    def hold():
        with transaction.atomic():
            list(model.objects.select_for_update().filter(pk=pk).values_list("pk"))
            held.set()
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_sleep(%s)", [seconds])

    return held, hold


def after(event, target):
    def run():
        assert event.wait(timeout=10)
        return target()

    return run


def after_blocked(count, target):
    """Run target once `count` other transactions wait for a row lock (so it queues behind them)."""

    def run():
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with connection.cursor() as cursor:
                cursor.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock'"
                )
                if cursor.fetchone()[0] >= count:
                    return target()
            time.sleep(0.01)
        raise AssertionError("nobody queued for the lock")

    return run


@pytest.fixture
def no_retries(caplog):
    """The lock order alone serialised the race: no deadlock reached common.db's retry."""
    caplog.set_level(logging.WARNING, logger="common.db")
    yield
    retried = [record.getMessage() for record in caplog.get_records("call") if record.name == "common.db"]
    assert not retried


def test_ten_approvers_approving_at_once_make_exactly_one_decision(requester):
    approvers = [UserFactory(display_name=f"Approver {i}") for i in range(THREADS)]
    request = request_activation(requester, eligible_for(requester, role_with(approvers=approvers)))
    now = timezone.now()

    def approve_as(approver):
        return lambda: services.activation_approve(
            approver=approver, request=request, reason="ok", mfa_verified_at=now
        )

    results = run_concurrently(*(approve_as(approver) for approver in approvers))

    [granted] = successes(results)
    refusals = errors(results)
    assert len(refusals) == THREADS - 1, refusals
    assert all(isinstance(error, services.ActivationError) for error in refusals), refusals
    winner = granted.decided_by
    assert all(f"already granted by {winner}" in error.messages[0] for error in refusals)
    request = reloaded(request)
    assert (request.status, request.decided_by) == (Status.GRANTED, winner)
    assert Approval.objects.count() == 1
    assert ActiveAssignment.objects.filter(user=requester).count() == 1
    assert AuditEvent.objects.filter(action="activation.approved").count() == 1
    assert DirectoryOperation.objects.filter(operation="grant").count() == 1


def test_approve_and_deny_at_once_make_exactly_one_decision(requester, approver):
    other = UserFactory(display_name="Other Approver")
    request = request_activation(requester, eligible_for(requester, role_with(approvers=[approver, other])))
    now = timezone.now()

    results = run_concurrently(
        lambda: services.activation_approve(approver=approver, request=request, mfa_verified_at=now),
        lambda: services.activation_deny(approver=other, request=request, reason="No", mfa_verified_at=now),
    )

    assert len(successes(results)) == 1 and len(errors(results)) == 1, results
    request = reloaded(request)
    decided = AuditEvent.objects.filter(action__in=["activation.approved", "activation.denied"])
    assert decided.count() == 1
    assert (request.status == Status.GRANTED) == (decided.get().action == "activation.approved")
    assert ActiveAssignment.objects.filter(user=requester).count() == (request.status == Status.GRANTED)


RACES = 5  # each race test runs this many races (one database flush for all of them)


def test_approval_racing_the_timeout_job_has_one_outcome(approver):
    for _ in range(RACES):
        approve_against_timeout(approver)


def approve_against_timeout(approver):
    requester = UserFactory()
    request = request_activation(requester, eligible_for(requester, role_with(approvers=[approver])))
    deadline = request.decide_by
    just_before = deadline - timedelta(seconds=1)

    approval, timed_out = run_concurrently(
        lambda: services.activation_approve(
            approver=approver, request=request, mfa_verified_at=just_before, now=just_before
        ),
        lambda: jobs.activation_timeout_due(now=deadline + timedelta(seconds=1)),
    )

    request = reloaded(request)
    events = AuditEvent.objects.filter(target_id=str(request.pk))
    approved = events.filter(action="activation.approved").count()
    timeouts = events.filter(action="activation.timed_out").count()
    if request.status == Status.GRANTED:
        assert not isinstance(approval, Exception) and timed_out == 0
        assert (approved, timeouts) == (1, 0)
        assert ActiveAssignment.objects.filter(user=requester).count() == 1
    else:
        assert request.status == Status.TIMED_OUT, request.status
        assert isinstance(approval, services.ActivationError) and "timed out" in approval.messages[0]
        assert timed_out == 1 and (approved, timeouts) == (0, 1)
        assert not ActiveAssignment.objects.filter(user=requester).exists()


def test_approval_racing_the_removal_of_the_eligibility_never_leaves_access(approver):
    for _ in range(RACES):
        approve_against_removal(approver)


def approve_against_removal(approver):
    requester = UserFactory()
    request = request_activation(requester, eligible_for(requester, role_with(approvers=[approver])))
    eligible = request.eligible

    approval, removal = run_concurrently(
        lambda: services.activation_approve(
            approver=approver, request=request, mfa_verified_at=timezone.now()
        ),
        lambda: eligible_remove(actor=None, assignment=eligible, reason="Left the team"),
    )

    assert not isinstance(removal, Exception), removal
    request = reloaded(request)
    assert not user_holds_role(user=requester, role=request.role)
    assert not user_holds_role(user=requester, role=request.role, at=timezone.now() + HOUR / 2)
    assert not ActiveAssignment.objects.filter(user=requester, ended_at__isnull=True).exists()
    actions = list(AuditEvent.objects.filter(target_id=str(request.pk)).values_list("action", flat=True))
    if isinstance(approval, Exception):
        # The removal came first: the approval was refused and the request still waits.
        assert isinstance(approval, services.ActivationError), approval
        assert "no longer eligible" in approval.messages[0]
        assert request.status == Status.PENDING_APPROVAL
        assert actions == ["activation.requested"]
    else:
        # The approval came first: the removal then ended the activation it granted.
        assert request.status == Status.REVOKED
        assert actions == ["activation.requested", "activation.approved", "activation.revoked"]


def test_ten_identical_activations_at_once_create_one(requester):
    eligible = eligible_for(requester, role_with())

    results = run_concurrently(*(lambda: request_activation(requester, eligible) for _ in range(THREADS)))

    assert len(successes(results)) == 1, results
    assert all(isinstance(error, services.ActivationError) for error in errors(results)), errors(results)
    assert ActivationRequest.objects.count() == 1
    assert ActiveAssignment.objects.filter(user=requester).count() == 1
    assert AuditEvent.objects.filter(action="activation.granted").count() == 1


def test_ten_activations_through_two_eligibilities_at_once_create_one(requester):
    # Direct and through a group: two different eligibility rows, so no common lock; the
    # database constraint is what keeps it to one.
    role = role_with()
    group = DirectoryGroupFactory()
    group.members.add(requester)
    eligibilities = [eligible_for(requester, role), eligible_for(group, role)]

    results = run_concurrently(
        *(lambda e=eligibilities[i % 2]: request_activation(requester, e) for i in range(THREADS))
    )

    assert len(successes(results)) == 1, results
    assert all(isinstance(error, services.ActivationError) for error in errors(results)), errors(results)
    assert ActiveAssignment.objects.filter(user=requester).count() == 1
    assert AuditEvent.objects.filter(action="activation.granted").count() == 1


def test_two_expiry_runs_at_once_process_each_activation_once():
    requester = UserFactory()
    now = timezone.now()
    due = [
        request_activation(
            requester, eligible_for(requester, role_with(), starts_at=now - 2 * HOUR), now=now - 2 * HOUR
        )
        for _ in range(12)
    ]

    counts = run_concurrently(*(lambda: jobs.activation_expire_due(now=now, batch=2) for _ in range(2)))

    assert sum(counts) == len(due), counts
    assert {reloaded(r).status for r in due} == {Status.EXPIRED}
    assert AuditEvent.objects.filter(action="activation.expired").count() == len(due)
    assert DirectoryOperation.objects.filter(operation="revoke").count() == len(due)


def test_two_timeout_runs_at_once_process_each_request_once(approver):
    requester = UserFactory()
    now = timezone.now()
    stale = [
        request_activation(
            requester,
            eligible_for(requester, role_with(approvers=[approver]), starts_at=now - 48 * HOUR),
            now=now - 48 * HOUR,
        )
        for _ in range(8)
    ]

    counts = run_concurrently(*(lambda: jobs.activation_timeout_due(now=now, batch=2) for _ in range(2)))

    assert sum(counts) == len(stale), counts
    assert AuditEvent.objects.filter(action="activation.timed_out").count() == len(stale)


# --- One lock order: ending an activation from both sides at once (PostgreSQL, 20 rounds) ------

ROUNDS = 20


def test_revoke_and_removal_of_the_same_active_assignment_at_once_end_it_once(admin, no_retries):
    role = role_with()
    for _ in range(ROUNDS):
        revoke_against_active_remove(admin, role)


def revoke_against_active_remove(admin, role):
    requester = UserFactory()
    request = request_activation(requester, eligible_for(requester, role))
    assignment = request.active_assignment

    revoke, removal = run_concurrently(
        lambda: services.activation_revoke(actor=admin, request=request, reason="Incident over"),
        lambda: active_remove(actor=admin, assignment=assignment, reason="Not needed"),
    )

    assert len(successes([revoke, removal])) == 1, (revoke, removal)
    request, assignment = reloaded(request), ActiveAssignment.objects.get(pk=assignment.pk)
    assert request.status == Status.REVOKED
    assert assignment.ended_at is not None
    assert DirectoryOperation.objects.filter(assignment=assignment, operation="revoke").count() == 1
    ended = request_actions(request)[1:]
    assert ended == ["activation.revoked"], ended
    removed = AuditEvent.objects.filter(action="active_assignment.removed", target_id=str(assignment.pk))
    if isinstance(revoke, Exception):
        # The removal came first and closed the request: the revoke is told it changed.
        assert isinstance(revoke, TransitionNotAllowed), revoke
        assert removed.count() == 1
        assert assignment.end_reason == ActiveAssignment.EndReason.REVOKED
    else:
        assert isinstance(removal, ValidationError), removal
        assert "already ended" in removal.messages[0]
        assert removed.count() == 0


def test_deactivation_and_removal_of_the_eligibility_at_once_end_the_activation_once(admin, no_retries):
    role = role_with()
    for _ in range(ROUNDS):
        deactivate_against_eligible_remove(admin, role)


def deactivate_against_eligible_remove(admin, role):
    requester = UserFactory()
    eligible = eligible_for(requester, role)
    request = request_activation(requester, eligible)

    deactivation, removal = run_concurrently(
        lambda: services.activation_deactivate(requester=requester, request=request),
        lambda: eligible_remove(actor=admin, assignment=eligible, reason="Left the team"),
    )

    assert not isinstance(removal, Exception), removal
    request = reloaded(request)
    assert request.active_assignment.ended_at is not None
    assert not user_holds_role(user=requester, role=role)
    revokes = DirectoryOperation.objects.filter(assignment=request.active_assignment, operation="revoke")
    assert revokes.count() == 1
    if isinstance(deactivation, Exception):
        # The removal came first and revoked the activation: the deactivation is told it changed.
        assert isinstance(deactivation, TransitionNotAllowed), deactivation
        assert request.status == Status.REVOKED
        assert request_actions(request)[1:] == ["activation.revoked"]
    else:
        assert request.status == Status.DEACTIVATED
        assert request_actions(request)[1:] == ["activation.deactivated"]


def test_deactivation_and_the_requesters_account_deactivation_at_once_end_the_activation_once(
    admin, no_retries
):
    role = role_with()
    for _ in range(ROUNDS):
        deactivate_against_user_deactivate(admin, role)


def deactivate_against_user_deactivate(admin, role):
    requester = UserFactory()
    request = request_activation(requester, eligible_for(requester, role))

    deactivation, account = run_concurrently(
        lambda: services.activation_deactivate(requester=requester, request=request),
        lambda: user_deactivate(actor=admin, user=requester, reason="Left the company"),
    )

    assert not isinstance(account, Exception), account
    request = reloaded(request)
    assert request.active_assignment.ended_at is not None
    if isinstance(deactivation, Exception):
        assert isinstance(deactivation, TransitionNotAllowed), deactivation
        assert request.status == Status.REVOKED
    else:
        assert request.status == Status.DEACTIVATED
    assert len(request_actions(request)) == 2, request_actions(request)


def test_approval_and_the_requesters_account_deactivation_at_once_leave_no_access(
    admin, approver, no_retries
):
    role = role_with(approvers=[approver])
    for _ in range(ROUNDS):
        approve_against_user_deactivate(admin, approver, role)


def approve_against_user_deactivate(admin, approver, role):
    requester = UserFactory()
    request = request_activation(requester, eligible_for(requester, role))

    approval, account = run_concurrently(
        lambda: services.activation_approve(
            approver=approver, request=request, mfa_verified_at=timezone.now()
        ),
        lambda: user_deactivate(actor=admin, user=requester, reason="Left the company"),
    )

    assert not isinstance(account, Exception), account
    request = reloaded(request)
    assert not ActiveAssignment.objects.filter(user=requester, ended_at__isnull=True).exists()
    if isinstance(approval, Exception):
        assert isinstance(approval, services.ActivationError), approval
        assert request.status == Status.CANCELED
    else:
        assert request.status == Status.REVOKED


def test_approving_an_extension_while_an_administrator_changes_the_eligibility_applies_both(
    admin, approver, no_retries
):
    role = role_with(approvers=[approver])
    for _ in range(ROUNDS):
        approve_extension_against_eligible_update(admin, approver, role)


def approve_extension_against_eligible_update(admin, approver, role):
    requester = UserFactory()
    now = timezone.now()
    eligible = eligible_for(requester, role, ends_at=now + timedelta(days=10))
    request = services.extension_request(
        requester=requester, eligible=eligible, duration=timedelta(days=30), justification="More"
    )
    new_end = now + timedelta(days=20)
    # The approval queues first for the eligibility, then the update comes: extending it takes
    # the role's settings, which the update locks first (so the approval must lock them before
    # the eligibility too).
    held, hold = holding(EligibleAssignment, eligible.pk)

    _, approval, update = run_concurrently(
        hold,
        after(held, lambda: approve(approver, request)),
        after(
            held, after_blocked(1, lambda: eligible_update(actor=admin, assignment=eligible, ends_at=new_end))
        ),
    )

    assert not errors([approval, update]), (approval, update)
    eligible.refresh_from_db()
    # The later of the two decides: the extension counts from the end the update set, or the
    # update replaces the extended end.
    assert eligible.ends_at in (new_end + timedelta(days=30), new_end)
    events = AuditEvent.objects.filter(target_id=str(eligible.pk))
    assert events.filter(action="eligible_assignment.extended").count() == 1
    assert events.filter(action="eligible_assignment.updated").count() == 1
