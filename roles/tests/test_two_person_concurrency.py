"""The two-person rule under concurrency (PostgreSQL only: SQLite serialises everything).
Every thread has its own connection; they start together at a barrier. Each race ends with
exactly one decision."""

from datetime import timedelta

import pytest
from django.utils import timezone

from activations.tests.test_concurrency import errors, run_concurrently, successes
from audit.models import AuditEvent
from roles import services, two_person
from roles.models import EligibleAssignment, PendingChange, RoleSettings
from roles.selectors import PIM_ADMINISTRATOR
from tests.factories import ActiveAssignmentFactory, RoleFactory, UserFactory, portal_role

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

ROUNDS = 5  # races per test (one database flush for all of them)


def administrators(count: int) -> list:
    people = []
    for number in range(count):
        user = UserFactory(display_name=f"Admin {number}")
        ActiveAssignmentFactory(user=user, role=portal_role(PIM_ADMINISTRATOR))
        people.append(user)
    return people


def approval(approver, change, at):
    return lambda: two_person.pending_change_approve(
        approver=approver, change=change, mfa_verified_at=at, now=at
    )


def test_two_approvers_at_once_make_exactly_one_decision():
    proposer, *approvers = administrators(3)
    for _ in range(ROUNDS):
        two_approvers_race(proposer, approvers)


def two_approvers_race(proposer, approvers):
    role = RoleFactory()
    change = services.role_settings_update(actor=proposer, role=role, changes={"require_mfa": False})
    now = timezone.now()

    results = run_concurrently(*(approval(approver, change, now) for approver in approvers))

    [approved] = successes(results)
    [refused] = errors(results)
    assert f"already approved by {approved.decided_by}" in str(refused), refused
    change.refresh_from_db()
    assert (change.status, change.decided_by) == ("approved", approved.decided_by)
    assert RoleSettings.objects.get(role=role).require_mfa is False
    assert AuditEvent.objects.filter(target_id=str(change.pk), action="pending_change.approved").count() == 1
    assert AuditEvent.objects.filter(action="role_settings.changed", role_id=role.pk).count() == 1


def test_approve_and_reject_at_once_make_exactly_one_decision():
    proposer, first, second = administrators(3)
    for _ in range(ROUNDS):
        approve_against_reject(proposer, first, second)


def approve_against_reject(proposer, first, second):
    role = RoleFactory()
    change = services.eligible_assign(
        actor=proposer, role=role, principal=proposer, ends_at=timezone.now() + timedelta(days=7)
    )
    now = timezone.now()

    results = run_concurrently(
        approval(first, change, now),
        lambda: two_person.pending_change_reject(
            approver=second, change=change, reason="No", mfa_verified_at=now
        ),
    )

    assert len(successes(results)) == 1 and len(errors(results)) == 1, results
    change.refresh_from_db()
    granted = EligibleAssignment.objects.filter(user=proposer, role=role).count()
    assert granted == (change.status == PendingChange.Status.APPROVED)
    decided = AuditEvent.objects.filter(
        target_id=str(change.pk), action__in=["pending_change.approved", "pending_change.rejected"]
    )
    assert decided.count() == 1


def test_an_approval_racing_the_expiry_job_has_one_outcome():
    proposer, approver = administrators(2)
    for _ in range(ROUNDS):
        approve_against_expiry(proposer, approver)


def approve_against_expiry(proposer, approver):
    role = RoleFactory()
    change = services.role_settings_update(actor=proposer, role=role, changes={"require_mfa": False})

    approved, expired = run_concurrently(
        approval(approver, change, change.decide_by - timedelta(seconds=1)),
        lambda: two_person.pending_change_expire_due(now=change.decide_by),
    )

    change.refresh_from_db()
    if change.status == PendingChange.Status.APPROVED:
        assert expired == 0 and not isinstance(approved, Exception)
        assert RoleSettings.objects.get(role=role).require_mfa is False
    else:
        assert change.status == PendingChange.Status.EXPIRED and expired == 1
        assert isinstance(approved, Exception)
        assert RoleSettings.objects.get(role=role).require_mfa is True
