"""Races through the API (PostgreSQL: SQLite serialises everything)."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from activations.models import Approval
from activations.services import activation_request
from roles.models import RoleSettings
from tests.factories import UserFactory, totp_code, totp_device

from .helpers import error


def run_concurrently(*targets):
    """Call each target from its own thread (and database connection) at once."""
    barrier = threading.Barrier(len(targets))
    results = [None] * len(targets)

    def worker(index, target):
        try:
            barrier.wait()
            results[index] = target()
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=pair) for pair in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_approvers_deciding_at_once_make_one_decision_and_the_other_hears_409(
    requester, approver, approval_role, eligibility, token_client
):
    second = UserFactory(username="second")
    RoleSettings.objects.get(role=approval_role).approvers.add(second)
    request = activation_request(
        requester=requester,
        eligible=eligibility,
        duration=timedelta(hours=1),
        justification="Needed",
        mfa_verified_at=timezone.now(),
    )
    url = f"/api/v1/approvals/{request.pk}/decision/"
    clients = {person: token_client(person) for person in (approver, second)}
    codes = {person: totp_code(totp_device(person)) for person in (approver, second)}

    approve, deny = run_concurrently(
        lambda: clients[approver].post(url, {"decision": "approve", "otp_code": codes[approver]}),
        lambda: clients[second].post(url, {"decision": "deny", "reason": "No", "otp_code": codes[second]}),
    )

    assert sorted([approve.status_code, deny.status_code]) == [200, 409], (approve.json(), deny.json())
    loser = approve if approve.status_code == 409 else deny
    assert error(loser)["message"].startswith("This request was already ")
    assert Approval.objects.filter(request=request).count() == 1
