"""My pending approvals and the decision endpoint."""

from datetime import timedelta

import pytest
from django.utils import timezone

from activations.models import ActivationRequest
from activations.services import activation_request
from audit.models import AuditEvent
from roles.models import RoleSettings
from tests.factories import UserFactory, totp_code, totp_device

from .helpers import error

pytestmark = pytest.mark.django_db


@pytest.fixture
def pending(requester, approval_role, eligibility):
    return activation_request(
        requester=requester,
        eligible=eligibility,
        duration=timedelta(hours=1),
        justification="Needed",
        mfa_verified_at=timezone.now(),
    )


def decision_url(request) -> str:
    return f"/api/v1/approvals/{request.pk}/decision/"


def test_my_approvals_lists_what_waits_for_me_only(approver, requester, outsider, pending, token_client):
    assert [item["id"] for item in token_client(approver).get("/api/v1/approvals/").json()["results"]] == [
        str(pending.pk)
    ]
    assert token_client(requester).get("/api/v1/approvals/").json()["results"] == []
    assert token_client(outsider).get("/api/v1/approvals/").json()["results"] == []


def test_an_approver_approves_with_a_fresh_code(approver, devices, pending, token_client, time_machine):
    time_machine.move_to(timezone.now(), tick=False)

    response = token_client(approver).post(
        decision_url(pending), {"decision": "approve", "otp_code": totp_code(devices[approver])}
    )

    assert response.status_code == 200, response.json()
    assert response.json()["status"] == "granted"
    assert response.json()["approvals"][0]["approver"] == "approver"
    event = AuditEvent.objects.get(action="activation.approved", target_id=str(pending.pk))
    assert event.actor_id == approver.pk


def test_a_decision_without_a_code_is_a_400_on_otp_code(approver, devices, pending, token_client):
    response = token_client(approver).post(decision_url(pending), {"decision": "approve"})

    assert response.status_code == 400
    assert list(error(response)["fields"]) == ["otp_code"]
    assert ActivationRequest.objects.get(pk=pending.pk).status == "pending_approval"


def test_a_denial_needs_a_reason_and_spends_no_code_without_one(
    approver, devices, pending, token_client, time_machine
):
    time_machine.move_to(timezone.now(), tick=False)
    client = token_client(approver)
    code = totp_code(devices[approver])

    missing = client.post(decision_url(pending), {"decision": "deny", "reason": " ", "otp_code": code})
    denied = client.post(decision_url(pending), {"decision": "deny", "reason": "Not now", "otp_code": code})

    assert error(missing)["fields"] == {"reason": ["A reason is required to deny a request."]}
    assert denied.status_code == 200, denied.json()
    assert denied.json()["status"] == "denied"
    assert denied.json()["decision_reason"] == "Not now"


def test_the_second_decision_is_409_and_says_who_decided(
    approver, devices, pending, token_client, time_machine, approval_role
):
    second = UserFactory(username="second", display_name="Sam Second")
    devices[second] = totp_device(second)
    RoleSettings.objects.get(role=approval_role).approvers.add(second)
    pending.approvers.create(user=second)
    time_machine.move_to(timezone.now(), tick=False)
    token_client(approver).post(
        decision_url(pending), {"decision": "deny", "reason": "No", "otp_code": totp_code(devices[approver])}
    )

    response = token_client(second).post(
        decision_url(pending), {"decision": "approve", "otp_code": totp_code(devices[second])}
    )

    assert response.status_code == 409
    assert error(response)["message"].startswith("This request was already denied by Arne Approver at ")


def test_the_requester_cannot_decide_their_own_request(requester, devices, pending, token_client):
    response = token_client(requester).post(
        decision_url(pending), {"decision": "approve", "otp_code": totp_code(devices[requester])}
    )

    assert response.status_code == 403
    assert error(response)["message"] == "You cannot decide your own request."


def test_an_admin_who_is_not_an_approver_gets_403_and_an_outsider_404(admin, outsider, pending, token_client):
    body = {"decision": "approve", "otp_code": "123456"}

    assert token_client(admin).post(decision_url(pending), body).status_code == 403
    assert token_client(outsider).post(decision_url(pending), body).status_code == 404


def test_an_unknown_decision_is_a_400(approver, pending, token_client):
    response = token_client(approver).post(decision_url(pending), {"decision": "maybe", "otp_code": "1"})

    assert list(error(response)["fields"]) == ["decision"]


def test_a_timed_out_request_cannot_be_approved(approver, devices, pending, token_client, time_machine):
    time_machine.move_to(pending.decide_by, tick=False)

    response = token_client(approver).post(
        decision_url(pending), {"decision": "approve", "otp_code": totp_code(devices[approver])}
    )

    assert response.status_code == 409
    assert "timed out" in error(response)["message"]


# --- Decisions re-check the live policy; refusals are audited ----------------------------------


def test_a_decision_grants_no_more_than_the_roles_maximum_now_and_says_so(
    approver, approval_role, devices, pending, token_client, time_machine
):
    time_machine.move_to(timezone.now(), tick=False)
    RoleSettings.objects.filter(role=approval_role).update(activation_max_duration=timedelta(minutes=30))

    response = token_client(approver).post(
        decision_url(pending), {"decision": "approve", "otp_code": totp_code(devices[approver])}
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["status"], body["duration"], body["requested_duration"]) == ("granted", 1800, 3600)
    event = AuditEvent.objects.get(action="activation.approved", target_id=str(pending.pk))
    assert event.details["duration_capped"]["granted_seconds"] == 1800


def test_an_approver_removed_from_the_role_gets_a_403_and_leaves_a_record(
    approver, approval_role, devices, pending, token_client
):
    successor = UserFactory(username="successor")
    RoleSettings.objects.get(role=approval_role).approvers.set([successor])

    response = token_client(approver).post(
        decision_url(pending), {"decision": "approve", "otp_code": totp_code(devices[approver])}
    )

    assert response.status_code == 403
    assert error(response)["message"].startswith("You are no longer an approver of")
    refused = AuditEvent.objects.get(action="activation.decision_refused", target_id=str(pending.pk))
    assert (refused.actor_id, refused.outcome) == (approver.pk, "denied")
    assert set(pending.approvers.values_list("user__username", flat=True)) == {"approver", "successor"}


def test_a_self_approval_try_over_the_api_leaves_a_record(requester, devices, pending, token_client):
    token_client(requester).post(
        decision_url(pending), {"decision": "approve", "otp_code": totp_code(devices[requester])}
    )

    refused = AuditEvent.objects.get(action="activation.self_approval_refused")
    assert (refused.actor_id, refused.target_id, refused.outcome) == (requester.pk, str(pending.pk), "denied")
    assert refused.request_id  # the web request's id, like every event written while serving it
