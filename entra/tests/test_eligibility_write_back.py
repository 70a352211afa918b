"""Eligibilities made or changed in the portal, written back to Entra through
roleEligibilityScheduleRequests by the directory outbox (real msal, real HTTP to the stub);
what the Entra import itself changes is never echoed back."""

from datetime import timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.models import AuditEvent
from entra.services import entra_sync_run
from entra.tests.conftest import ALICE, BOB, USER_ADMIN, contoso
from roles import jobs
from roles.directory_services import directory_outbox_drain
from roles.models import DirectoryOperation, EligibleAssignment, Role
from roles.services import eligible_assign, eligible_extend, eligible_remove, eligible_renew, eligible_update
from tests.factories import RoleFactory, UserFactory

pytestmark = pytest.mark.django_db
REQUESTS = "/v1.0/roleManagement/directory/roleEligibilityScheduleRequests"
DAY = timedelta(days=1)


@pytest.fixture
def user_admin():
    return Role.objects.get(kind="entra", template_id=USER_ADMIN)


@pytest.fixture
def alice(db):
    return UserFactory(username="alice@contoso.example", external_id=ALICE)


def posts(stub):
    return [(c.body["action"], c.status) for c in stub.requests_to("POST", REQUESTS)]


def in_entra(stub, principal=ALICE):
    return [
        e for e in stub.eligibilities if e["principalId"] == principal and e["roleDefinitionId"] == USER_ADMIN
    ]


def assign(alice, role, *, now, ends_at):
    return eligible_assign(
        actor=None,
        role=role,
        principal=alice,
        ends_at=ends_at,
        justification="Runs the service desk",
        now=now,
    )


def test_an_eligibility_made_in_the_portal_is_assigned_in_entra_with_its_end(graph, stub, alice, user_admin):
    now = timezone.now()
    eligible = assign(alice, user_admin, now=now, ends_at=now + 90 * DAY)

    assert directory_outbox_drain() == 1

    [call] = stub.requests_to("POST", REQUESTS)
    assert call.status == 201
    assert call.body["action"] == "adminAssign"
    assert (call.body["principalId"], call.body["roleDefinitionId"], call.body["directoryScopeId"]) == (
        ALICE,
        USER_ADMIN,
        "/",
    )
    expiration = call.body["scheduleInfo"]["expiration"]
    assert (
        expiration["type"] == "afterDateTime"
        and parse_datetime(expiration["endDateTime"]) == eligible.ends_at
    )
    assert (
        call.body["justification"]
        == "Made eligible in PIM Portal (an eligible assignment): Runs the service desk"
    )
    [op] = DirectoryOperation.objects.all()
    assert (op.eligible_id, op.assignment_id, op.operation, op.status) == (
        eligible.pk,
        None,
        "eligible_assign",
        "done",
    )
    assert op.effect == "waiting"  # proof of effect follows (test_effect.py)
    event = AuditEvent.objects.get(action="directory.eligible_assign_confirmed")
    assert event.target_id == str(eligible.pk)
    assert len(in_entra(stub)) == 1


def test_extend_update_and_remove_follow_in_order(graph, stub, alice, user_admin):
    now = timezone.now()
    eligible = assign(alice, user_admin, now=now, ends_at=now + 30 * DAY)
    eligible_extend(
        actor=None, assignment=eligible, ends_at=now + 60 * DAY, justification="Still needed", now=now
    )
    eligible_update(actor=None, assignment=eligible, ends_at=now + 45 * DAY, justification="Shorter", now=now)
    eligible_remove(actor=None, assignment=eligible, reason="Left the team", now=now)

    # All four queued; the drain carries them out oldest first, each after the one before.
    while directory_outbox_drain(now=timezone.now() + timedelta(minutes=5)):
        pass

    assert posts(stub) == [
        ("adminAssign", 201),
        ("adminExtend", 201),
        ("adminUpdate", 201),
        ("adminRemove", 201),
    ]
    # Each sends the eligibility as it is when sent (the outbox keeps the intent, the row the
    # state): the extension already carries the later update's end.
    extend = stub.requests_to("POST", REQUESTS)[1]
    assert parse_datetime(extend.body["scheduleInfo"]["expiration"]["endDateTime"]) == now + 45 * DAY
    assert in_entra(stub) == []
    assert list(DirectoryOperation.objects.order_by("pk").values_list("operation", "status")) == [
        ("eligible_assign", "done"),
        ("eligible_extend", "done"),
        ("eligible_update", "done"),
        ("eligible_remove", "done"),
    ]


def test_a_change_entra_does_not_have_assigns_it_and_a_removal_of_nothing_counts_as_removed(
    graph, stub, alice, user_admin
):
    now = timezone.now()
    eligible = assign(alice, user_admin, now=now, ends_at=now + 30 * DAY)
    directory_outbox_drain()
    stub.eligibilities.clear()  # removed in Entra meanwhile

    eligible_extend(actor=None, assignment=eligible, ends_at=now + 60 * DAY, justification="", now=now)
    directory_outbox_drain()
    assert posts(stub)[1:] == [("adminExtend", 400), ("adminAssign", 201)]
    assert len(in_entra(stub)) == 1

    stub.eligibilities.clear()
    eligible_remove(actor=None, assignment=eligible, now=now)
    directory_outbox_drain()
    assert posts(stub)[-1] == ("adminRemove", 400)
    op = DirectoryOperation.objects.get(operation="eligible_remove")
    assert op.status == "done" and op.result["status"] == "already removed"


def test_expiry_and_renewal_are_written_back(graph, stub, alice, user_admin):
    now = timezone.now()
    eligible = assign(alice, user_admin, now=now, ends_at=now + DAY)
    directory_outbox_drain()
    later = now + DAY + timedelta(minutes=1)

    assert jobs.assignment_expire_due(now=later) == 1
    directory_outbox_drain(now=later)
    assert posts(stub)[-1] == ("adminRemove", 201)
    assert in_entra(stub) == []

    renewed = eligible_renew(
        actor=None, assignment=eligible, ends_at=later + 30 * DAY, justification="", now=later
    )
    directory_outbox_drain(now=later)

    assert posts(stub)[-2:] == [("adminRenew", 400), ("adminAssign", 201)]  # nothing left to renew: assigned
    assert DirectoryOperation.objects.get(eligible=renewed).operation == "eligible_renew"
    [entry] = in_entra(stub)
    assert parse_datetime(entry["endDateTime"]) == renewed.ends_at


def test_entra_down_is_retried_and_sent_once(graph, stub, alice, user_admin):
    now = timezone.now()
    assign(alice, user_admin, now=now, ends_at=now + 30 * DAY)
    stub.fail("POST", "roleManagement/directory/roleEligibilityScheduleRequests", 503, times=2)

    assert directory_outbox_drain(now=now) == 0
    assert directory_outbox_drain(now=now + timedelta(seconds=15)) == 0
    assert directory_outbox_drain(now=now + timedelta(minutes=2)) == 1
    assert directory_outbox_drain(now=now + timedelta(hours=1)) == 0

    assert posts(stub) == [("adminAssign", 503), ("adminAssign", 503), ("adminAssign", 201)]
    assert len(in_entra(stub)) == 1


def test_the_portals_own_roles_are_not_written_back(graph, stub, alice):
    now = timezone.now()
    own = RoleFactory(name="Payroll Administrator")
    assign(alice, own, now=now, ends_at=now + 30 * DAY)

    assert not DirectoryOperation.objects.exists()
    assert directory_outbox_drain() == 0
    assert posts(stub) == []


def test_what_the_import_changes_is_not_echoed_back_and_a_written_back_one_is_not_duplicated(
    graph, stub, user_admin
):
    contoso(stub)
    entra_sync_run()  # imports users and Entra's own eligibilities
    imported = EligibleAssignment.objects.count()
    assert imported and not DirectoryOperation.objects.exists()
    bob = UserFactory._meta.model.objects.get(external_id=BOB)
    now = timezone.now()
    made_here = assign(bob, user_admin, now=now, ends_at=now + 30 * DAY)
    directory_outbox_drain()
    assert posts(stub) == [("adminAssign", 201)]

    run = entra_sync_run()  # Entra now lists the portal's one: adopted, not created again

    assert EligibleAssignment.objects.count() == imported + 1
    assert EligibleAssignment.objects.filter(user=bob, role=user_admin, ended_at=None).get() == made_here
    assert DirectoryOperation.objects.count() == 1  # nothing from the import went back
    assert run.counts["eligibilities"].get("created", 0) == 0
    assert directory_outbox_drain() == 0


def test_an_eligibility_removed_in_the_portal_is_not_reimported_while_the_removal_is_pending(
    graph, stub, user_admin
):
    contoso(stub)
    entra_sync_run()
    link_owner = EligibleAssignment.objects.filter(entra_import__isnull=False, ended_at=None).first()
    count = EligibleAssignment.objects.count()
    eligible_remove(actor=None, assignment=link_owner, reason="Not needed", now=timezone.now())
    stub.fail("POST", "roleManagement/directory/roleEligibilityScheduleRequests", 503)
    directory_outbox_drain()  # Entra busy: the removal waits

    run = entra_sync_run()

    assert EligibleAssignment.objects.count() == count  # not created again from Entra's copy
    assert run.counts["eligibilities"]["skipped"] >= 1
    assert directory_outbox_drain(now=timezone.now() + timedelta(minutes=2)) == 1
    entra_sync_run()
    assert EligibleAssignment.objects.count() == count
