"""Activations carried over to Entra: the outbox (roles.directory_services), unchanged, calls
GraphBackend, which talks to the stub over real HTTP."""

from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from activations import jobs
from activations import services as activations
from audit.models import AuditEvent
from entra.tests.conftest import ALICE, DAVE, USER_ADMIN, activate
from roles.directory_services import directory_outbox_drain
from roles.models import DirectoryOperation, Role
from roles.selectors import user_holds_role
from tests.factories import RoleFactory, UserFactory

pytestmark = pytest.mark.django_db
REQUESTS = "/v1.0/roleManagement/directory/roleAssignmentScheduleRequests"
HOUR = timedelta(hours=1)


@pytest.fixture
def user_admin():
    return Role.objects.get(kind="entra", template_id=USER_ADMIN)


@pytest.fixture
def alice(db):
    return UserFactory(username="alice@contoso.example", external_id=ALICE)


def ops(operation=None):
    queryset = DirectoryOperation.objects.order_by("pk")
    return list(queryset.filter(operation=operation) if operation else queryset)


def posts(stub, action=None):
    calls = stub.requests_to("POST", REQUESTS)
    return [c for c in calls if action is None or c.body["action"] == action]


def test_a_grant_is_assigned_in_entra_until_its_end_and_removed_at_expiry(graph, stub, alice, user_admin):
    now = timezone.now()
    request = activate(alice, user_admin, now=now)
    assignment = request.active_assignment

    assert directory_outbox_drain(now=now) == 1

    [assign] = posts(stub)
    assert assign.status == 201
    assert assign.body["action"] == "adminAssign"
    assert (assign.body["principalId"], assign.body["roleDefinitionId"], assign.body["directoryScopeId"]) == (
        ALICE,
        USER_ADMIN,
        "/",
    )
    expiration = assign.body["scheduleInfo"]["expiration"]
    assert expiration["type"] == "afterDateTime"
    assert parse_datetime(expiration["endDateTime"]) == assignment.ends_at
    assert parse_datetime(assign.body["scheduleInfo"]["startDateTime"]) >= assignment.starts_at
    assert "Incident 42" in assign.body["justification"]
    [grant] = ops()
    assert grant.status == "done" and grant.result["status"] == "Provisioned"
    confirmed = AuditEvent.objects.get(action="directory.grant_confirmed")
    assert confirmed.target_id == str(assignment.pk)

    later = assignment.ends_at + timedelta(seconds=1)
    assert jobs.activation_expire_due(now=later) == 1
    assert directory_outbox_drain(now=later) == 1

    [remove] = posts(stub, "adminRemove")
    assert (remove.body["principalId"], remove.body["roleDefinitionId"]) == (ALICE, USER_ADMIN)
    assert "scheduleInfo" not in remove.body
    assert stub.assignments == []
    assert [op.status for op in ops()] == ["done", "done"]
    assert AuditEvent.objects.filter(action="directory.revoke_confirmed").count() == 1
    assert directory_outbox_drain(now=later + HOUR) == 0
    assert len(posts(stub)) == 2


def test_early_deactivation_removes_the_assignment_in_entra(graph, stub, alice, user_admin):
    now = timezone.now()
    request = activate(alice, user_admin, now=now)
    directory_outbox_drain(now=now)

    activations.activation_deactivate(requester=alice, request=request, now=now + timedelta(minutes=10))
    directory_outbox_drain(now=now + timedelta(minutes=10))

    assert [c.body["action"] for c in posts(stub)] == ["adminAssign", "adminRemove"]
    assert "Deactivated in PIM Portal" in posts(stub)[1].body["justification"]
    assert stub.assignments == []


def test_an_assignment_entra_already_has_counts_as_granted(graph, stub, alice, user_admin):
    stub.add_assignment(ALICE, USER_ADMIN)
    now = timezone.now()
    activate(alice, user_admin, now=now)

    directory_outbox_drain(now=now)

    [grant] = ops()
    assert grant.status == "done" and grant.result == {
        "action": "adminAssign",
        "status": "already assigned",
        "code": "RoleAssignmentExists",
    }
    assert posts(stub)[0].status == 400
    assert AuditEvent.objects.get(action="directory.grant_confirmed").outcome == "success"


def test_removing_what_entra_already_ended_counts_as_removed(graph, stub, alice, user_admin):
    now = timezone.now()
    request = activate(alice, user_admin, now=now)
    directory_outbox_drain(now=now)
    stub.assignments.clear()  # Entra ended it at its expiration, before the portal's job ran

    later = request.active_assignment.ends_at + timedelta(minutes=1)
    jobs.activation_expire_due(now=later)
    directory_outbox_drain(now=later)

    revoke = ops("revoke")[0]
    assert revoke.status == "done" and revoke.result["status"] == "already removed"
    assert revoke.result["code"] == "RoleAssignmentDoesNotExist"


def test_a_policy_refusal_fails_the_grant_clearly_and_the_portal_keeps_its_access(
    graph, stub, alice, user_admin
):
    stub.policy_failure = "ExpirationRule"
    now = timezone.now()
    activate(alice, user_admin, now=now)

    directory_outbox_drain(now=now)

    [grant] = ops()
    assert grant.status == "failed"
    assert "Entra's role policy refused the adminAssign (ExpirationRule)" in grant.last_error
    failed = AuditEvent.objects.get(action="directory.grant_failed")
    assert failed.outcome == "failure" and "ExpirationRule" in failed.details["result"]["error"]
    assert user_holds_role(user=alice, role=user_admin, at=now + timedelta(minutes=1))
    assert directory_outbox_drain(now=now + HOUR) == 0  # permanent: never retried
    assert len(posts(stub)) == 1


@pytest.mark.parametrize(
    ("retry_after", "wait"),
    [("120", 120), ("30.5", 30.5), (None, 10)],
    ids=["whole seconds", "fractional", "missing: the outbox's backoff"],
)
def test_throttled_grants_wait_for_retry_after(graph, stub, alice, user_admin, retry_after, wait):
    headers = {"Retry-After": retry_after} if retry_after else {}
    stub.fail("POST", "roleManagement/directory/roleAssignmentScheduleRequests", 429, headers=headers)
    now = timezone.now()
    activate(alice, user_admin, now=now)

    assert directory_outbox_drain(now=now) == 0

    [grant] = ops()
    assert grant.status == "pending" and grant.attempts == 1 and "429" in grant.last_error
    assert grant.next_attempt_at == now + timedelta(seconds=wait)
    assert directory_outbox_drain(now=now + timedelta(seconds=wait - 0.1)) == 0
    assert directory_outbox_drain(now=now + timedelta(seconds=wait)) == 1
    assert [c.status for c in posts(stub)] == [429, 201]


def test_a_500_then_success(graph, stub, alice, user_admin):
    stub.fail("POST", "roleManagement/directory/roleAssignmentScheduleRequests", 500)
    now = timezone.now()
    activate(alice, user_admin, now=now)

    directory_outbox_drain(now=now)
    directory_outbox_drain(now=now + timedelta(seconds=10))

    assert [c.status for c in posts(stub)] == [500, 201]
    assert ops()[0].status == "done" and ops()[0].attempts == 2


def test_graph_down_for_a_while_then_back_is_drained_once_and_nothing_twice(graph, stub, alice, user_admin):
    dave = UserFactory(username="dave@contoso.example", external_id=DAVE)
    t0 = timezone.now()
    activate(alice, user_admin, now=t0, duration=2 * HOUR)
    activate(dave, user_admin, now=t0, duration=2 * HOUR)
    stub.fail("POST", "roleManagement/directory/roleAssignmentScheduleRequests", 503, times=2)
    assert directory_outbox_drain(now=t0) == 0  # Graph answers 503
    stub.stop()
    assert directory_outbox_drain(now=t0 + timedelta(seconds=15)) == 0  # then nobody answers
    assert directory_outbox_drain(now=t0 + timedelta(seconds=20)) == 0  # backing off: not even tried
    # Meanwhile the portal's own state is the truth: both hold the role.
    assert user_holds_role(user=alice, role=user_admin, at=t0 + timedelta(seconds=20))
    stub.start()

    assert directory_outbox_drain(now=t0 + timedelta(minutes=2)) == 2
    assert directory_outbox_drain(now=t0 + timedelta(minutes=30)) == 0

    assert [c.status for c in posts(stub)] == [503, 503, 201, 201]
    assert sorted(a["principalId"] for a in stub.assignments) == sorted([ALICE, DAVE])
    assert [(op.status, op.attempts) for op in ops()] == [("done", 3), ("done", 3)]
    assert AuditEvent.objects.filter(action="directory.grant_confirmed").count() == 2
    assert stub.token_requests == 1


def test_access_ends_on_time_in_the_portal_while_graph_is_down(graph, stub, alice, user_admin):
    now = timezone.now()
    request = activate(alice, user_admin, now=now)
    directory_outbox_drain(now=now)
    ends_at = request.active_assignment.ends_at
    stub.stop()

    jobs.activation_expire_due(now=ends_at)
    directory_outbox_drain(now=ends_at)

    assert not user_holds_role(user=alice, role=user_admin, at=ends_at)
    assert ops("revoke")[0].status == "pending"
    stub.start()
    directory_outbox_drain(now=ends_at + timedelta(minutes=1))
    assert ops("revoke")[0].status == "done" and stub.assignments == []


def test_a_user_without_a_directory_id_fails_as_not_a_directory_user(graph, stub, user_admin):
    local = UserFactory(username="local-only")
    now = timezone.now()
    activate(local, user_admin, now=now)

    directory_outbox_drain(now=now)

    [grant] = ops()
    assert grant.status == "failed" and "not a directory user" in grant.last_error
    assert posts(stub) == []


def test_the_portals_own_roles_are_not_sent_to_entra(graph, stub, alice):
    local_role = RoleFactory(kind="app")
    now = timezone.now()
    activate(alice, local_role, now=now)

    directory_outbox_drain(now=now)

    [grant] = ops()
    assert grant.status == "done" and grant.result == {"skipped": "not an Entra directory role"}
    assert stub.received == []  # not even a token


def test_a_permanent_direct_assignment_has_no_expiration(graph, stub, alice, user_admin):
    from roles.models import ActiveAssignment
    from roles.services import active_assign

    user_admin.settings.active_allow_permanent = True
    user_admin.settings.active_require_mfa = False
    user_admin.settings.save()
    now = datetime.now(UTC)
    assignment = active_assign(
        actor=None, role=user_admin, principal=alice, justification="Standing", now=now
    )
    assert isinstance(assignment, ActiveAssignment)

    directory_outbox_drain(now=now)

    assert posts(stub)[0].body["scheduleInfo"]["expiration"] == {"type": "noExpiration"}
