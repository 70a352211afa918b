"""/api/v1/approvals/: paged and filtered; POST /api/v1/approvals/decisions/ decides several
requests with one reason and one code, all of them or none."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from activations.models import ActivationRequest, Approval
from activations.services import activation_deny, activation_request
from audit.models import AuditEvent
from roles.models import RoleSettings
from tests.factories import (
    ActiveAssignmentFactory,
    EligibleAssignmentFactory,
    RoleFactory,
    UserFactory,
    totp_code,
    totp_device,
)

from .helpers import error

pytestmark = pytest.mark.django_db
DECISIONS = "/api/v1/approvals/decisions/"
Status = ActivationRequest.Status


def approval_role_for(*approvers, name=None):
    role = RoleFactory(**({"name": name} if name else {}))
    RoleSettings.objects.filter(role=role).update(require_approval=True)
    role.settings.refresh_from_db()
    role.settings.approvers.set(approvers)
    return role


def pending_for(person, role):
    return activation_request(
        requester=person,
        eligible=EligibleAssignmentFactory(user=person, role=role),
        duration=timedelta(hours=1),
        justification="Needed",
        mfa_verified_at=timezone.now(),
    )


def many_pending(count, approver, *, role=None, prefix="p"):
    role = role or approval_role_for(approver)
    return [pending_for(UserFactory(username=f"{prefix}{n}"), role) for n in range(count)]


@pytest.fixture
def approver_device(approver):
    return totp_device(approver)


@pytest.fixture
def frozen(time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    return time_machine


def body(requests, code, decision="approve", reason="Planned"):
    return {
        "requests": [str(r.pk) for r in requests],
        "decision": decision,
        "reason": reason,
        "otp_code": code,
    }


def statuses(requests) -> set[str]:
    return set(
        ActivationRequest.objects.filter(pk__in=[r.pk for r in requests]).values_list("status", flat=True)
    )


# --- Bulk decisions --------------------------------------------------------------------------


def test_an_approver_approves_20_requests_with_one_code(approver, approver_device, token_client, frozen):
    requests = many_pending(20, approver)

    response = token_client(approver).post(
        DECISIONS, body(requests, totp_code(approver_device)), format="json"
    )

    assert response.status_code == 200, response.json()
    assert [item["id"] for item in response.json()["requests"]] == [str(r.pk) for r in requests]
    assert {item["status"] for item in response.json()["requests"]} == {"granted"}
    assert AuditEvent.objects.filter(action="activation.approved", actor=approver).count() == 20


def test_a_request_decided_meanwhile_is_a_409_naming_it_and_nothing_changes(
    approver, approver_device, token_client, frozen
):
    second = UserFactory(username="approver2")
    requests = many_pending(3, approver, role=approval_role_for(approver, second))
    activation_deny(approver=second, request=requests[1], reason="No", mfa_verified_at=timezone.now())

    response = token_client(approver).post(
        DECISIONS, body(requests, totp_code(approver_device)), format="json"
    )

    assert response.status_code == 409
    failure = error(response)
    assert failure["code"] == "conflict"
    assert [entry.split(":")[0] for entry in failure["fields"]["requests"]] == [str(requests[1].pk)]
    assert "already denied by" in failure["fields"]["requests"][0]
    assert statuses([requests[0], requests[2]]) == {Status.PENDING_APPROVAL}
    assert not Approval.objects.filter(approver=approver).exists()


def test_the_409_spends_no_code(approver, approver_device, token_client, frozen):
    requests = many_pending(2, approver)
    activation_deny(approver=approver, request=requests[0], reason="No", mfa_verified_at=timezone.now())
    code = totp_code(approver_device)
    client = token_client(approver)

    assert client.post(DECISIONS, body(requests, code), format="json").status_code == 409
    response = client.post(DECISIONS, body(requests[1:], code), format="json")

    assert response.status_code == 200, response.json()


def test_a_request_not_mine_to_decide_is_a_403_and_nothing_changes(
    approver, requester, approver_device, token_client, frozen
):
    mine = many_pending(2, approver)
    own = pending_for(approver, approval_role_for(requester))

    response = token_client(approver).post(
        DECISIONS, body([*mine, own], totp_code(approver_device)), format="json"
    )

    assert response.status_code == 403
    assert error(response)["fields"]["requests"] == [f"{own.pk}: You cannot decide your own request."]
    assert statuses([*mine, own]) == {Status.PENDING_APPROVAL}
    assert AuditEvent.objects.filter(action="activation.self_approval_refused", actor=approver).exists()


def test_a_request_i_may_not_see_is_a_404_and_nothing_changes(
    approver, outsider, approver_device, token_client
):
    mine = many_pending(1, approver)
    hidden = pending_for(outsider, approval_role_for(UserFactory(username="x")))

    response = token_client(approver).post(
        DECISIONS, body([*mine, hidden], totp_code(approver_device)), format="json"
    )

    assert response.status_code == 404
    assert error(response)["fields"]["requests"] == [f"{hidden.pk}: No such request."]
    assert statuses(mine) == {Status.PENDING_APPROVAL}


def test_a_wrong_code_changes_nothing(approver, approver_device, token_client):
    requests = many_pending(3, approver)

    response = token_client(approver).post(DECISIONS, body(requests, "000000"), format="json")

    assert response.status_code == 400 and list(error(response)["fields"]) == ["otp_code"]
    assert statuses(requests) == {Status.PENDING_APPROVAL}


def test_a_denial_needs_a_reason_and_bad_input_is_a_400(approver, approver_device, token_client):
    requests = many_pending(1, approver)
    client = token_client(approver)
    code = totp_code(approver_device)

    assert list(error(client.post(DECISIONS, body(requests, code, "deny", ""), format="json"))["fields"]) == [
        "reason"
    ]
    for bad in ({"requests": []}, {"requests": ["nope"]}, {"requests": [str(requests[0].pk)] * 101}):
        response = client.post(DECISIONS, {**body(requests, code), **bad}, format="json")
        assert response.status_code == 400 and "requests" in error(response)["fields"]
    assert (
        client.post(DECISIONS, {**body(requests, code), "status": "granted"}, format="json").status_code
        == 400
    )
    assert statuses(requests) == {Status.PENDING_APPROVAL}


def test_the_requester_cannot_approve_their_own_through_the_api(requester, approver, token_client, frozen):
    own = pending_for(requester, approval_role_for(approver))
    device = totp_device(requester)

    response = token_client(requester).post(DECISIONS, body([own], totp_code(device)), format="json")

    assert response.status_code == 403
    assert statuses([own]) == {Status.PENDING_APPROVAL}


# --- Paging and filters ----------------------------------------------------------------------


def test_the_list_is_paged_oldest_first(approver, token_client, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    requests = []
    for n in range(5):
        requests += many_pending(1, approver, prefix=f"q{n}-")
        time_machine.shift(timedelta(minutes=1))
    client = token_client(approver)

    first = client.get("/api/v1/approvals/", {"page_size": 2}).json()
    second = client.get(first["next"]).json()

    assert [item["id"] for item in first["results"] + second["results"]] == [str(r.pk) for r in requests[:4]]
    assert error(client.get("/api/v1/approvals/", {"page_size": 0}))["fields"] == {
        "page_size": ["A whole number from 1 to 500."]
    }


def test_the_list_filters_by_role_requester_and_age(approver, token_client, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    vault = approval_role_for(approver, name="Vault Keeper")
    old = many_pending(1, approver, role=vault, prefix="early")[0]
    time_machine.shift(timedelta(hours=5))
    recent = many_pending(1, approver, prefix="late")[0]
    client = token_client(approver)

    def listed(**query):
        response = client.get("/api/v1/approvals/", query)
        assert response.status_code == 200, response.json()
        return [item["id"] for item in response.json()["results"]]

    assert listed(role=str(vault.pk)) == [str(old.pk)]
    assert listed(requester="late0") == [str(recent.pk)]
    assert listed(older_than_hours=4) == [str(old.pk)]
    assert listed(older_than_hours=4, role=str(vault.pk), requester="late0") == []
    assert error(client.get("/api/v1/approvals/", {"older_than_hours": "0"}))["fields"] == {
        "older_than_hours": ["Ensure this value is greater than or equal to 1."]
    }
    assert "role" in error(client.get("/api/v1/approvals/", {"role": "x"}))["fields"]


def test_the_lists_queries_do_not_grow_with_the_inbox(approver, token_client):
    client = token_client(approver)
    many_pending(2, approver, prefix="a")
    client.get("/api/v1/approvals/")
    with CaptureQueriesContext(connection) as few:
        client.get("/api/v1/approvals/")
    many_pending(30, approver, prefix="b")
    with CaptureQueriesContext(connection) as many:
        response = client.get("/api/v1/approvals/")
    assert len(response.json()["results"]) == 32
    assert len(many) == len(few), "\n".join(query["sql"] for query in many.captured_queries)


def test_the_schema_documents_the_bulk_endpoint_and_the_filters(anonymous):
    schema = anonymous.get("/api/schema/", HTTP_ACCEPT="application/json").json()

    operation = schema["paths"]["/api/v1/approvals/decisions/"]["post"]
    assert {"200", "400", "403", "404", "409"} <= set(operation["responses"])
    names = {parameter["name"] for parameter in schema["paths"]["/api/v1/approvals/"]["get"]["parameters"]}
    assert {"role", "requester", "older_than_hours", "cursor", "page_size"} <= names


# --- Extending a direct active assignment --------------------------------------------------------


def test_my_direct_active_assignment_is_extended_through_the_api(requester, approver, outsider, token_client):
    now = timezone.now()
    mine = ActiveAssignmentFactory(
        user=requester,
        role=approval_role_for(approver),
        starts_at=now - timedelta(days=9),
        ends_at=now + timedelta(days=2),
    )
    theirs = ActiveAssignmentFactory(
        user=outsider, starts_at=now - timedelta(days=9), ends_at=now + timedelta(days=2)
    )
    client = token_client(requester)
    data = {"duration": "P30D", "justification": "Still on call"}

    response = client.post(f"/api/v1/me/active-assignments/{mine.pk}/extend/", data, format="json")
    assert response.status_code == 201, response.json()
    assert response.json()["kind"] == "extend" and response.json()["status"] == "pending_approval"
    again = client.post(f"/api/v1/me/active-assignments/{mine.pk}/extend/", data, format="json")
    assert again.status_code == 409
    renew = client.post(f"/api/v1/me/active-assignments/{mine.pk}/renew/", data, format="json")
    assert renew.status_code == 400 and "ended within the last 30 days" in error(renew)["message"]
    assert (
        client.post(f"/api/v1/me/active-assignments/{theirs.pk}/extend/", data, format="json").status_code
        == 404
    )
