"""ticketInfo carried over to Entra: an activation's ticket, and the optional ticket an
administrator gives a direct or eligible assignment, go with every schedule request about
it (real msal, real HTTP to the stub)."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse
from django.utils import timezone

from activations import services as activations
from audit.models import AuditEvent
from entra.tests.conftest import ALICE, USER_ADMIN
from roles.directory_services import directory_outbox_drain
from roles.models import ActiveAssignment, EligibleAssignment, Role
from roles.services import active_assign, eligible_assign, eligible_extend, eligible_remove
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
ASSIGNMENT_REQUESTS = "/v1.0/roleManagement/directory/roleAssignmentScheduleRequests"
ELIGIBILITY_REQUESTS = "/v1.0/roleManagement/directory/roleEligibilityScheduleRequests"
TICKET = {"ticketNumber": "CHG-1234", "ticketSystem": "ServiceNow"}


@pytest.fixture
def user_admin():
    return Role.objects.get(kind="entra", template_id=USER_ADMIN)


@pytest.fixture
def alice(db):
    return UserFactory(username="alice@contoso.example", external_id=ALICE)


def bodies(stub, path):
    return [(call.body["action"], call.body.get("ticketInfo")) for call in stub.requests_to("POST", path)]


def drain():
    while directory_outbox_drain(now=timezone.now() + timedelta(minutes=5)):
        pass


def activate_with(alice, role, **ticket):
    from activations.services import activation_request
    from tests.factories import EligibleAssignmentFactory

    now = timezone.now()
    request = activation_request(
        requester=alice,
        eligible=EligibleAssignmentFactory(user=alice, role=role),
        duration=timedelta(hours=1),
        justification="Incident 42",
        mfa_verified_at=now,
        now=now,
        **ticket,
    )
    assert request.status == "granted"
    return request


def test_an_activations_ticket_goes_with_its_grant_and_its_removal(graph, stub, alice, user_admin):
    request = activate_with(alice, user_admin, ticket_number="INC-42", ticket_system="ServiceNow")
    assignment = request.active_assignment
    assert (assignment.ticket_number, assignment.ticket_system) == ("INC-42", "ServiceNow")
    drain()
    activations.activation_deactivate(requester=alice, request=request, now=timezone.now())
    drain()

    ticket = {"ticketNumber": "INC-42", "ticketSystem": "ServiceNow"}
    assert bodies(stub, ASSIGNMENT_REQUESTS) == [("adminAssign", ticket), ("adminRemove", ticket)]


def test_an_activation_without_a_ticket_sends_no_ticket_info(graph, stub, alice, user_admin):
    activate_with(alice, user_admin)
    drain()

    [call] = stub.requests_to("POST", ASSIGNMENT_REQUESTS)
    assert "ticketInfo" not in call.body


def test_an_administrators_ticket_on_an_eligibility_is_stored_audited_and_sent_with_each_change(
    graph, stub, alice, user_admin
):
    now = timezone.now()
    eligible = eligible_assign(
        actor=None,
        role=user_admin,
        principal=alice,
        ends_at=now + timedelta(days=30),
        justification="Runs the service desk",
        ticket_number=" CHG-1234 ",
        ticket_system="ServiceNow",
        now=now,
    )
    assert (eligible.ticket_number, eligible.ticket_system) == ("CHG-1234", "ServiceNow")
    event = AuditEvent.objects.get(action="eligible_assignment.created", target_id=str(eligible.pk))
    assert (event.details["ticket_number"], event.details["ticket_system"]) == ("CHG-1234", "ServiceNow")
    eligible_extend(actor=None, assignment=eligible, ends_at=now + timedelta(days=60), justification="More")
    eligible_remove(actor=None, assignment=eligible, reason="Left the team")
    drain()

    assert bodies(stub, ELIGIBILITY_REQUESTS) == [
        ("adminAssign", TICKET),
        ("adminExtend", TICKET),
        ("adminRemove", TICKET),
    ]


def test_a_direct_assignment_made_on_the_roles_page_carries_its_ticket(
    graph, stub, alice, user_admin, admin, verified_client
):
    client = verified_client(admin)
    data = {
        "principal": alice.username,
        "scope": "/",
        "starts_at": "",
        "end": "duration",
        "duration": "7",
        "duration_unit": "days",
        "ends_at": "",
        "justification": "Migration weekend",
        "ticket_system": "ServiceNow",
        "ticket_number": "CHG-1234",
    }
    form = client.get(reverse("manage_roles:active_new", args=[user_admin.pk])).content.decode()
    assert 'name="ticket_number"' in form and 'name="ticket_system"' in form

    response = client.post(reverse("manage_roles:active_new", args=[user_admin.pk]), data)

    assert response.status_code == 302
    assignment = ActiveAssignment.objects.get(user=alice, role=user_admin)
    assert (assignment.ticket_number, assignment.ticket_system) == ("CHG-1234", "ServiceNow")
    event = AuditEvent.objects.get(action="active_assignment.created", target_id=str(assignment.pk))
    assert event.details["ticket_number"] == "CHG-1234"
    assert "<td>ServiceNow CHG-1234</td>" in client.get(response["Location"]).content.decode()
    drain()
    assert bodies(stub, ASSIGNMENT_REQUESTS) == [("adminAssign", TICKET)]


def test_a_ticket_system_without_a_number_is_refused_and_nothing_changes(
    graph, stub, alice, user_admin, admin, verified_client
):
    client = verified_client(admin)
    data = {
        "principal": alice.username,
        "scope": "/",
        "starts_at": "",
        "end": "duration",
        "duration": "30",
        "duration_unit": "days",
        "ends_at": "",
        "justification": "Cover",
        "ticket_system": "ServiceNow",
        "ticket_number": "",
    }
    response = client.post(reverse("manage_roles:eligible_new", args=[user_admin.pk]), data)

    assert response.status_code == 200
    assert "Enter the ticket number too" in response.content.decode()
    with pytest.raises(ValidationError) as refused:
        active_assign(
            actor=None,
            role=user_admin,
            principal=alice,
            ends_at=timezone.now() + timedelta(days=1),
            justification="Cover",
            ticket_number="x" * 101,
        )
    assert "ticket_number" in refused.value.message_dict
    assert not EligibleAssignment.objects.filter(role=user_admin).exists()
    assert not ActiveAssignment.objects.filter(role=user_admin).exists()
    drain()
    assert stub.graph_calls() == []


def test_a_self_assignment_keeps_its_ticket_through_the_second_administrators_approval(
    graph, stub, user_admin, admin, second_admin, settings
):
    from roles.models import PendingChange
    from roles.two_person import pending_change_approve

    settings.PIM_TWO_PERSON_RULE = True
    admin.external_id = ALICE
    admin.save(update_fields=["external_id"])
    pending = eligible_assign(
        actor=admin,
        role=user_admin,
        principal=admin,
        ends_at=timezone.now() + timedelta(days=30),
        justification="Service desk cover",
        ticket_number="CHG-9",
        ticket_system="Jira",
    )
    assert isinstance(pending, PendingChange)
    assert not EligibleAssignment.objects.filter(role=user_admin).exists()

    pending_change_approve(approver=second_admin, change=pending, mfa_verified_at=timezone.now())

    eligible = EligibleAssignment.objects.get(role=user_admin, user=admin)
    assert (eligible.ticket_number, eligible.ticket_system) == ("CHG-9", "Jira")
    drain()
    assert bodies(stub, ELIGIBILITY_REQUESTS) == [
        ("adminAssign", {"ticketNumber": "CHG-9", "ticketSystem": "Jira"})
    ]
