"""Bulk decisions racing (PostgreSQL): two approvers decide overlapping requests at once, all
or nothing; each request ends with exactly one decision and no call is half applied."""

import pytest
from django.utils import timezone

from activations import services
from activations.models import ActivationRequest, Approval
from tests.factories import UserFactory

from .helpers import eligible_for, request_activation, role_with
from .test_concurrency import errors, run_concurrently, successes

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]
Status = ActivationRequest.Status


def test_two_approvers_deciding_overlapping_requests_at_once_leave_one_decision_each():
    first, second = UserFactory(username="first"), UserFactory(username="second")
    role = role_with(approvers=[first, second])
    people = [UserFactory(username=f"p{n}") for n in range(6)]
    requests = [request_activation(person, eligible_for(person, role)) for person in people]

    def decide(approver, chosen, decision):
        now = timezone.now()
        return lambda: services.activations_decide_all(
            approver=approver, requests=chosen, decision=decision, reason="race", mfa_verified_at=now
        )

    results = run_concurrently(
        decide(first, requests[:4], "approve"),
        decide(second, requests[2:], "deny"),
    )

    assert len(successes(results)) == 1
    (loser,) = errors(results)
    assert isinstance(loser, services.DecisionsConflict)
    assert set(loser.changed) == {requests[2].pk, requests[3].pk}  # the overlap, and only it
    for request in requests:
        assert Approval.objects.filter(request=request).count() <= 1
    decided = ActivationRequest.objects.exclude(status=Status.PENDING_APPROVAL).count()
    assert decided == 4  # the winner's four; the loser changed nothing
