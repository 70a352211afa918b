"""Races through the API (PostgreSQL: SQLite serialises everything)."""

import logging
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from activations.models import ActivationRequest, Approval
from activations.services import activation_request
from audit.models import AuditEvent
from roles.models import ActiveAssignment, RoleSettings
from roles.services import eligible_remove
from tests.factories import EligibleAssignmentFactory, UserFactory, totp_code, totp_device

from .helpers import error, granted_activation


def run_concurrently(*targets):
    """Call each target from its own thread (and database connection) at once; an exception
    (a view's error the test client re-raises: a 500) counts as the target's result."""
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

    threads = [threading.Thread(target=worker, args=pair) for pair in enumerate(targets)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "a thread is stuck (deadlock?)"
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


ROUNDS = 20


@pytest.fixture
def no_retries(caplog):
    """The lock order alone serialised the race: no deadlock reached common.db's retry."""
    caplog.set_level(logging.WARNING, logger="common.db")
    yield
    retried = [record.getMessage() for record in caplog.get_records("call") if record.name == "common.db"]
    assert not retried


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_deactivating_while_an_administrator_removes_the_eligibility_is_200_or_409_never_500(
    requester, admin, role, token_client, no_retries
):
    RoleSettings.objects.filter(role=role).update(require_mfa=False)
    client = token_client(requester)
    for _ in range(ROUNDS):
        deactivate_against_eligible_remove(requester, admin, role, client)


def deactivate_against_eligible_remove(requester, admin, role, client):
    eligible = EligibleAssignmentFactory(user=requester, role=role)
    request = granted_activation(requester, eligible)

    response, removal = run_concurrently(
        lambda: client.post(f"/api/v1/activation-requests/{request.pk}/deactivate/"),
        lambda: eligible_remove(actor=admin, assignment=eligible, reason="Left the team"),
    )

    assert not isinstance(response, Exception), response  # a 500
    assert not isinstance(removal, Exception), removal
    request.refresh_from_db()
    assert request.active_assignment.ended_at is not None
    ends = AuditEvent.objects.filter(
        target_id=str(request.pk), action__in=["activation.deactivated", "activation.revoked"]
    )
    if response.status_code == 200:
        assert response.json()["status"] == "deactivated"
        assert request.status == ActivationRequest.Status.DEACTIVATED
        assert [event.action for event in ends] == ["activation.deactivated"]
    else:
        # The removal came first and revoked the activation: "already changed".
        assert response.status_code == 409, response.json()
        assert error(response)["code"] == "conflict"
        assert request.status == ActivationRequest.Status.REVOKED
        assert [event.action for event in ends] == ["activation.revoked"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_activation_asked_twice_at_once_is_one_201_and_one_409(
    requester, role, eligibility, token_client
):
    RoleSettings.objects.filter(role=role).update(require_mfa=False)
    clients = [token_client(requester) for _ in range(2)]
    body = {"eligible": str(eligibility.pk), "duration": "PT1H", "justification": "Incident 42"}

    first, second = run_concurrently(
        *(lambda client=client: client.post("/api/v1/activation-requests/", body) for client in clients)
    )

    assert sorted([first.status_code, second.status_code]) == [201, 409], (first.json(), second.json())
    loser = first if first.status_code == 409 else second
    assert error(loser)["code"] == "conflict"
    assert "already active for you" in error(loser)["message"]
    assert ActivationRequest.objects.filter(requester=requester).count() == 1
    assert ActiveAssignment.objects.filter(user=requester).count() == 1
