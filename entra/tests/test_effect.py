"""Proof of effect: after Entra accepts a grant or a revoke, the worker reads the schedule
instances until the change is in force (or gone), with real msal and real HTTP against the
stub, which applies accepted requests after a number of reads (or never)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from activations import services as activations
from alerts.models import Alert
from audit.models import AuditEvent
from entra.tests.conftest import ALICE, USER_ADMIN, activate, graph_time
from roles.directory_services import (
    directory_effect_check,
    directory_effects_check_due,
    directory_outbox_drain,
)
from roles.models import DirectoryOperation, Role
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db
INSTANCES = "/v1.0/roleManagement/directory/roleAssignmentScheduleInstances"
ALERT = "directory_changes_not_effective"


@pytest.fixture
def user_admin():
    return Role.objects.get(kind="entra", template_id=USER_ADMIN)


@pytest.fixture
def alice(db):
    return UserFactory(username="alice@contoso.example", external_id=ALICE)


def granted(alice, user_admin):
    """An activation whose adminAssign Entra accepted; the operation and when it was accepted."""
    request = activate(alice, user_admin, now=timezone.now(), duration=timedelta(hours=3))
    assert directory_outbox_drain() == 1
    op = DirectoryOperation.objects.get(operation="grant")
    assert op.status == "done" and op.effect == "waiting" and op.effective_at is None
    return request, op


def reads(stub):
    return stub.requests_to("GET", INSTANCES)


def check(op, seconds):
    return directory_effect_check(operation_id=op.pk, now=op.completed_at + timedelta(seconds=seconds))


def test_a_grant_that_appears_late_is_recorded_effective_when_the_instance_shows(
    graph, stub, alice, user_admin, verified_client
):
    stub.apply_after_reads = 2
    request, op = granted(alice, user_admin)

    assert check(op, 1) is False  # the first look is due 5 s after acceptance
    assert reads(stub) == []
    assert check(op, 5) is False  # not in force yet
    [first] = reads(stub)
    assert first.query["$filter"] == (
        f"principalId eq '{ALICE}' and roleDefinitionId eq '{USER_ADMIN}' and directoryScopeId eq '/'"
    )
    op.refresh_from_db()
    assert (op.effect, op.effect_checks) == ("waiting", 1)
    assert op.next_check_at == op.completed_at + timedelta(seconds=15)  # then 10 s later
    assert check(op, 14) is False and len(reads(stub)) == 1

    assert check(op, 15) is True

    op.refresh_from_db()
    assert op.effect == "effective"
    assert op.effective_at == op.completed_at + timedelta(seconds=15)
    event = AuditEvent.objects.get(action="directory.grant_effective")
    assert event.target_id == str(request.active_assignment_id)
    assert event.details["effective_at"] == op.effective_at.isoformat()
    assert event.details["checks"] == 2
    assert check(op, 600) is False  # done: never looked at again
    assert len(reads(stub)) == 2
    client = verified_client(alice)
    page = client.get(reverse("activations:request_detail", args=[request.pk])).content.decode()
    assert 'data-state="effective"' in page
    assert f"Effective in Entra at {op.effective_at:%Y-%m-%d %H:%M:%S} UTC" in page


def test_a_grant_that_never_appears_raises_the_alert_then_is_given_up(
    graph, stub, alice, user_admin, verified_client, settings, django_capture_on_commit_callbacks
):
    settings.PIM_DIRECTORY_EFFECT_ALERT_MINUTES = 5
    settings.PIM_DIRECTORY_EFFECT_GIVE_UP_MINUTES = 60
    stub.apply_after_reads = None
    request, op = granted(alice, user_admin)
    client = verified_client(alice)
    detail = reverse("activations:request_detail", args=[request.pk])
    page = client.get(detail).content.decode()
    assert 'data-state="waiting"' in page and "Waiting for Entra (accepted at" in page

    with django_capture_on_commit_callbacks(execute=True):
        assert check(op, 5) is False
    assert not Alert.objects.filter(kind=ALERT).exists()  # not overdue yet

    with django_capture_on_commit_callbacks(execute=True):
        assert check(op, 5 * 60) is False
    alert = Alert.objects.get(kind=ALERT, status="open")
    [item] = alert.items
    assert item["id"] == str(op.pk) and "still waiting" in item["label"]

    with django_capture_on_commit_callbacks(execute=True):
        assert check(op, 60 * 60) is False
    op.refresh_from_db()
    assert op.effect == "unconfirmed" and op.next_check_at is None
    gave_up = AuditEvent.objects.get(action="directory.grant_unconfirmed")
    assert gave_up.outcome == "failure"
    assert gave_up.details["note"] == "The directory never showed the change."
    alert.refresh_from_db()
    assert alert.status == "open" and "never confirmed" in alert.items[0]["label"]
    assert 'data-state="unconfirmed"' in client.get(detail).content.decode()
    assert check(op, 2 * 60 * 60) is False  # given up: no more reads
    assert len(reads(stub)) == 3


def test_the_alert_resolves_when_a_late_change_shows(
    graph, stub, alice, user_admin, django_capture_on_commit_callbacks
):
    stub.apply_after_reads = 3
    _, op = granted(alice, user_admin)
    with django_capture_on_commit_callbacks(execute=True):
        check(op, 5)
        check(op, 6 * 60)
    assert Alert.objects.get(kind=ALERT).status == "open"

    with django_capture_on_commit_callbacks(execute=True):
        assert check(op, 7 * 60) is True

    assert Alert.objects.get(kind=ALERT).status == "resolved"


def test_a_revoke_is_effective_once_the_instance_is_gone(graph, stub, alice, user_admin, verified_client):
    request, op = granted(alice, user_admin)
    assert check(op, 5) is True  # applied at once
    stub.apply_after_reads = 2
    activations.activation_deactivate(requester=alice, request=request, now=timezone.now())
    assert directory_outbox_drain() == 1
    revoke = DirectoryOperation.objects.get(operation="revoke")
    assert revoke.effect == "waiting"
    client = verified_client(alice)
    detail = reverse("activations:request_detail", args=[request.pk])
    assert "Waiting for Entra to remove it" in client.get(detail).content.decode()

    assert check(revoke, 5) is False  # still there
    assert len(stub.assignments) == 1
    assert check(revoke, 15) is True

    assert stub.assignments == []
    assert AuditEvent.objects.filter(action="directory.revoke_effective").count() == 1
    assert "Removed in Entra at" in client.get(detail).content.decode()


def test_graph_unreachable_during_a_check_only_postpones_it(graph, stub, alice, user_admin):
    _, op = granted(alice, user_admin)
    stub.fail("GET", "roleManagement/directory/roleAssignmentScheduleInstances", 503)

    assert check(op, 5) is False

    op.refresh_from_db()
    assert op.effect == "waiting" and op.next_check_at == op.completed_at + timedelta(seconds=15)
    assert not AuditEvent.objects.filter(action__startswith="directory.grant_un").exists()
    assert check(op, 15) is True


def test_a_grant_that_ended_before_it_showed_is_not_confirmed_and_not_alerted(
    graph, stub, alice, user_admin, django_capture_on_commit_callbacks
):
    stub.apply_after_reads = None
    request, op = granted(alice, user_admin)
    ends_at = request.active_assignment.ends_at

    with django_capture_on_commit_callbacks(execute=True):
        assert directory_effect_check(operation_id=op.pk, now=ends_at + timedelta(seconds=1)) is False

    op.refresh_from_db()
    assert op.effect == "unconfirmed"
    note = AuditEvent.objects.get(action="directory.grant_unconfirmed").details["note"]
    assert note == "The assignment ended before the directory showed it."
    assert not Alert.objects.filter(kind=ALERT, status="open").exists()


def test_the_periodic_check_picks_up_only_the_due_waiting_changes(graph, stub, alice, user_admin):
    _, op = granted(alice, user_admin)
    accepted = op.completed_at

    assert directory_effects_check_due(now=accepted + timedelta(seconds=4)) == 0
    assert directory_effects_check_due(now=accepted + timedelta(seconds=5)) == 1
    assert directory_effects_check_due(now=accepted + timedelta(hours=1)) == 0
    assert len(reads(stub)) == 1


def test_portal_only_roles_and_the_null_directory_wait_for_nothing(alice, settings):
    settings.PIM_DIRECTORY_BACKEND = "roles.directory.NullBackend"
    role = Role.objects.get(kind="entra", template_id=USER_ADMIN)
    request = activate(alice, role, now=timezone.now())

    assert directory_outbox_drain() == 1

    op = DirectoryOperation.objects.get()
    assert op.status == "done" and op.effect == "" and op.next_check_at is None
    assert directory_effects_check_due(now=timezone.now() + timedelta(hours=2)) == 0
    from roles.directory_selectors import assignment_directory_status

    assert assignment_directory_status(assignment=request.active_assignment) is None


# --- Eligibilities written back: confirmed through roleEligibilityScheduleInstances -----------

ELIGIBILITY_INSTANCES = "/v1.0/roleManagement/directory/roleEligibilityScheduleInstances"


def made_eligible(alice, user_admin, *, starts_at=None, days=90):
    """An eligibility whose adminAssign Entra accepted; it and its operation."""
    from roles.services import eligible_assign

    now = timezone.now()
    eligible = eligible_assign(
        actor=None,
        role=user_admin,
        principal=alice,
        starts_at=starts_at,
        ends_at=(starts_at or now) + timedelta(days=days),
        justification="Runs the service desk",
        now=now,
    )
    assert directory_outbox_drain() == 1
    op = DirectoryOperation.objects.get(eligible=eligible, operation="eligible_assign")
    assert op.status == "done" and op.effect == "waiting"
    return eligible, op


def eligibility_reads(stub):
    return stub.requests_to("GET", ELIGIBILITY_INSTANCES)


def my_roles(client):
    return client.get(reverse("activations:my_roles")).content.decode()


def test_an_eligibility_that_appears_late_is_recorded_effective_and_shown_on_my_roles(
    graph, stub, alice, user_admin, verified_client
):
    stub.apply_after_reads = 2
    eligible, op = made_eligible(alice, user_admin)
    client = verified_client(alice)
    assert 'data-state="waiting"' in my_roles(client) and "Eligibility: Waiting for Entra" in my_roles(client)

    assert check(op, 5) is False  # not there yet
    [first] = eligibility_reads(stub)
    assert first.query["$filter"] == (
        f"principalId eq '{ALICE}' and roleDefinitionId eq '{USER_ADMIN}' and directoryScopeId eq '/'"
    )
    assert first.query["$select"] == "id,endDateTime"
    assert reads(stub) == []  # the assignment instances are not what proves an eligibility
    assert check(op, 15) is True

    op.refresh_from_db()
    assert op.effect == "effective" and op.effective_at == op.completed_at + timedelta(seconds=15)
    event = AuditEvent.objects.get(action="directory.eligible_assign_effective")
    assert event.target_id == str(eligible.pk) and event.details["checks"] == 2
    page = my_roles(client)
    assert 'data-state="effective"' in page
    assert f"Eligibility: Effective in Entra at {op.effective_at:%Y-%m-%d %H:%M:%S} UTC" in page


def test_an_eligibility_that_never_appears_raises_the_alert_then_is_given_up(
    graph, stub, alice, user_admin, settings, django_capture_on_commit_callbacks
):
    settings.PIM_DIRECTORY_EFFECT_ALERT_MINUTES = 5
    settings.PIM_DIRECTORY_EFFECT_GIVE_UP_MINUTES = 60
    stub.apply_after_reads = None
    eligible, op = made_eligible(alice, user_admin)

    with django_capture_on_commit_callbacks(execute=True):
        assert check(op, 5 * 60) is False
    alert = Alert.objects.get(kind=ALERT, status="open")
    [item] = alert.items
    assert item["id"] == str(op.pk)
    assert item["label"].startswith("eligibility assign of User Administrator")
    assert "still waiting" in item["label"]

    with django_capture_on_commit_callbacks(execute=True):
        assert check(op, 60 * 60) is False
    op.refresh_from_db()
    assert op.effect == "unconfirmed" and op.next_check_at is None
    gave_up = AuditEvent.objects.get(action="directory.eligible_assign_unconfirmed")
    assert gave_up.outcome == "failure" and gave_up.target_id == str(eligible.pk)
    assert "never confirmed" in Alert.objects.get(kind=ALERT, status="open").items[0]["label"]
    assert stub.eligibilities == []


def test_an_extension_is_effective_only_once_entra_has_the_new_end(graph, stub, alice, user_admin):
    from roles.services import eligible_extend

    eligible, assigned = made_eligible(alice, user_admin, days=30)
    assert check(assigned, 5) is True
    stub.apply_after_reads = 2
    later = eligible.ends_at + timedelta(days=30)
    eligible_extend(actor=None, assignment=eligible, ends_at=later, justification="Still needed")
    assert directory_outbox_drain() == 1
    extend = DirectoryOperation.objects.get(operation="eligible_extend")

    # The eligibility is there all along, with its old end: not yet the portal's.
    assert check(extend, 5) is False
    [instance] = stub.eligibilities
    assert instance["endDateTime"] != graph_time(later)
    assert check(extend, 15) is True
    assert AuditEvent.objects.filter(action="directory.eligible_extend_effective").count() == 1


def test_a_removed_eligibility_is_effective_once_the_instance_is_gone(
    graph, stub, alice, user_admin, verified_client
):
    from roles.services import eligible_remove

    eligible, assigned = made_eligible(alice, user_admin)
    assert check(assigned, 5) is True
    stub.apply_after_reads = 2
    eligible_remove(actor=None, assignment=eligible, reason="Left the team")
    assert directory_outbox_drain() == 1
    removal = DirectoryOperation.objects.get(operation="eligible_remove")
    assert removal.effect == "waiting"

    assert check(removal, 5) is False  # still in Entra
    assert len(stub.eligibilities) == 1
    assert check(removal, 15) is True
    assert stub.eligibilities == []
    event = AuditEvent.objects.get(action="directory.eligible_remove_effective")
    assert event.target_id == str(eligible.pk)
    from roles.directory_selectors import assignment_directory_status

    status = assignment_directory_status(assignment=eligible)
    assert status is not None and status.label == "Removed in Entra"


def test_an_eligibility_that_starts_later_is_first_checked_when_it_starts(graph, stub, alice, user_admin):
    starts_at = timezone.now() + timedelta(days=2)
    eligible, op = made_eligible(alice, user_admin, starts_at=starts_at)

    assert check(op, 5) is False  # not due in Entra before its start: no read, no verdict
    assert eligibility_reads(stub) == []
    op.refresh_from_db()
    assert op.effect == "waiting" and op.effect_checks == 0
    assert op.next_check_at == starts_at + timedelta(seconds=5)
    assert directory_effect_check(operation_id=op.pk, now=starts_at) is False  # not due yet

    assert directory_effect_check(operation_id=op.pk, now=starts_at + timedelta(seconds=5)) is True
    assert len(eligibility_reads(stub)) == 1


def test_the_roles_page_shows_each_assignments_state_in_entra(
    graph, stub, alice, user_admin, admin, verified_client
):
    stub.apply_after_reads = 2
    eligible, op = made_eligible(alice, user_admin)
    client = verified_client(admin)
    address = reverse("manage_roles:role", args=[user_admin.pk])
    page = client.get(address).content.decode()
    assert "<th>In Entra</th>" in page
    assert 'data-state="waiting">Waiting for Entra</td>' in page

    assert check(op, 5) is False and check(op, 15) is True

    op.refresh_from_db()
    page = client.get(address).content.decode()
    assert (
        f'data-state="effective">Effective in Entra at {op.effective_at:%Y-%m-%d %H:%M:%S} UTC</td>' in page
    )
