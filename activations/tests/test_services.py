"""Asking to activate a role (SPEC 2.3): the policy checks, the clock, scheduled starts,
scopes, groups and the one-open-activation rule. Every refusal changes nothing."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction

from activations import services
from activations.models import ActivationRequest, RequestApprover
from audit.models import AuditEvent
from roles.models import ActiveAssignment, DirectoryOperation
from roles.selectors import user_holds_role
from tests.factories import DirectoryGroupFactory, UserFactory

from .helpers import HOUR, T0, approve, eligible_for, request_actions, request_activation, role_with

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
CLOCK_START = T0  # the shared `clock` fixture (root conftest) stops time here

Status = ActivationRequest.Status


def assert_nothing_changed(requester, events_before):
    assert not ActivationRequest.objects.filter(requester=requester).exists()
    assert not ActiveAssignment.objects.filter(user=requester).exists()
    assert AuditEvent.objects.count() == events_before


# --- Granted at once or pending ---------------------------------------------------------------


def test_role_without_approval_is_granted_at_once_with_one_event(requester):
    role = role_with()
    eligible = eligible_for(requester, role)

    request = request_activation(requester, eligible, duration=2 * HOUR, ticket_number="INC-7")

    assert request.status == Status.GRANTED
    assignment = request.active_assignment
    assert (assignment.user, assignment.role, assignment.eligible) == (requester, role, eligible)
    assert assignment.origin == ActiveAssignment.Origin.ACTIVATION
    assert (assignment.starts_at, assignment.ends_at) == (T0, T0 + 2 * HOUR)
    assert (request.granted_at, request.ends_at) == (T0, T0 + 2 * HOUR)
    assert user_holds_role(user=requester, role=role)
    [event] = AuditEvent.objects.all()
    assert (event.action, event.actor, event.target_id) == ("activation.granted", requester, str(request.pk))
    assert event.details["approval"] == "not required"
    assert event.details["justification"] == "Incident 42"
    assert event.details["ticket"] == "INC-7"
    assert event.details["duration_seconds"] == 7200


def test_a_request_and_its_assignment_get_ids_ordered_by_when_they_were_made(requester, clock):
    """Time-ordered ids (common.ids.uuid7): the rows of one moment sit together in every
    index keyed by id, which the expiry sweep reads and writes together hours later."""
    request = request_activation(requester, eligible_for(requester, role_with()))
    clock.shift(timedelta(milliseconds=1))
    later = request_activation(requester, eligible_for(requester, role_with()))

    for row in (request, request.active_assignment):
        assert row.pk.version == 7
        assert row.pk.int >> 80 == int(T0.timestamp() * 1000)
    assert request.pk < later.pk and request.active_assignment.pk < later.active_assignment.pk


def test_granting_records_a_directory_grant_in_the_same_transaction(requester):
    role = role_with()
    request = request_activation(requester, eligible_for(requester, role))

    # The test's transaction never commits, so the operation is recorded but not yet run.
    [operation] = DirectoryOperation.objects.all()
    assert operation.assignment == request.active_assignment
    assert (operation.operation, operation.status) == ("grant", "pending")


def test_role_with_approval_waits_and_its_clock_starts_at_the_approval(requester, approver, clock):
    role = role_with(approvers=[approver])
    eligible = eligible_for(requester, role)

    request = request_activation(requester, eligible, duration=HOUR)  # asked at 10:00

    assert request.status == Status.PENDING_APPROVAL
    assert request.decide_by == T0 + timedelta(hours=24)  # the default approval timeout
    assert request.active_assignment is None and not user_holds_role(user=requester, role=role)
    assert not DirectoryOperation.objects.exists()
    [event] = AuditEvent.objects.all()
    assert (event.action, event.actor, event.target_id) == (
        "activation.requested",
        requester,
        str(request.pk),
    )

    clock.move_to(T0 + HOUR, tick=False)  # approved at 11:00
    request = approve(approver, request)

    assert request.status == Status.GRANTED
    assert (request.granted_at, request.ends_at) == (T0 + HOUR, T0 + 2 * HOUR)  # ends 12:00, not 11:00
    assignment = request.active_assignment
    assert (assignment.starts_at, assignment.ends_at) == (T0 + HOUR, T0 + 2 * HOUR)
    assert user_holds_role(user=requester, role=role, at=T0 + 2 * HOUR - timedelta(microseconds=1))
    assert not user_holds_role(user=requester, role=role, at=T0 + 2 * HOUR)
    assert request_actions(request) == ["activation.requested", "activation.approved"]


def test_scheduled_start_grants_access_from_that_moment(requester):
    role = role_with()
    starts_at = T0 + timedelta(hours=4)

    request = request_activation(requester, eligible_for(requester, role), starts_at=starts_at)

    assert request.status == Status.GRANTED
    assert (request.active_assignment.starts_at, request.ends_at) == (starts_at, starts_at + HOUR)
    assert not user_holds_role(user=requester, role=role, at=starts_at - timedelta(seconds=1))
    assert user_holds_role(user=requester, role=role, at=starts_at)
    assert not user_holds_role(user=requester, role=role, at=starts_at + HOUR)


def test_scheduled_start_that_has_passed_by_the_approval_starts_at_the_approval(requester, approver):
    role = role_with(approvers=[approver])
    request = request_activation(
        requester, eligible_for(requester, role), starts_at=T0 + timedelta(minutes=30)
    )

    request = approve(approver, request, now=T0 + HOUR)

    assert (request.active_assignment.starts_at, request.ends_at) == (T0 + HOUR, T0 + 2 * HOUR)


# --- Policy refusals ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"duration": timedelta(hours=8, minutes=1)}, "at most 8 hours"),
        ({"duration": timedelta(minutes=4, seconds=59)}, "at least 5 minutes"),
        ({"duration": timedelta(minutes=-30)}, "at least 5 minutes"),
        ({"duration": None}, "at least 5 minutes"),
        ({"starts_at": T0 - timedelta(minutes=5)}, "cannot be in the past"),
        ({"starts_at": T0 + timedelta(days=31)}, "at most 30 days ahead"),
        ({"justification": ""}, "justification is required"),
        ({"justification": "   "}, "justification is required"),
        ({"justification": "x" * 2001}, "at most 2000 characters"),
        ({"justification": "ok\x00"}, "control characters"),
        ({"mfa_verified_at": None}, "fresh code"),
        ({"mfa_verified_at": T0 - timedelta(seconds=301)}, "fresh code"),
    ],
)
def test_requests_outside_the_policy_are_refused_and_change_nothing(requester, changes, message):
    role = role_with()
    eligible = eligible_for(requester, role)
    before = AuditEvent.objects.count()

    with pytest.raises(ValidationError, match=message):
        request_activation(requester, eligible, **changes)

    assert_nothing_changed(requester, before)


def test_a_role_maximum_below_the_default_is_enforced(requester):
    role = role_with(activation_max_duration=timedelta(hours=2))
    eligible = eligible_for(requester, role)

    with pytest.raises(services.ActivationError, match="at most 2 hours"):
        request_activation(requester, eligible, duration=timedelta(hours=2, seconds=1))
    assert request_activation(requester, eligible, duration=timedelta(hours=2)).status == Status.GRANTED


def test_mfa_just_inside_the_step_up_window_is_accepted(requester, settings):
    eligible = eligible_for(requester, role_with())
    request = request_activation(requester, eligible, mfa_verified_at=T0 - settings.PIM_STEP_UP_WINDOW)
    assert request.mfa_verified_at == T0 - settings.PIM_STEP_UP_WINDOW


def test_a_role_without_mfa_or_justification_requirements_accepts_neither(requester):
    role = role_with(require_mfa=False, require_justification=False)
    request = request_activation(
        requester, eligible_for(requester, role), justification="", mfa_verified_at=None
    )
    assert request.status == Status.GRANTED


def test_a_role_requiring_a_ticket_refuses_a_request_without_one(requester):
    role = role_with(require_ticket=True)
    eligible = eligible_for(requester, role)
    before = AuditEvent.objects.count()

    with pytest.raises(services.ActivationError) as error:
        request_activation(requester, eligible)
    assert error.value.message_dict == {"ticket_number": ["A ticket number is required for this role."]}
    assert_nothing_changed(requester, before)

    request = request_activation(requester, eligible, ticket_number="CHG-1", ticket_system="ServiceNow")
    assert request_actions(request) == ["activation.granted"]
    assert AuditEvent.objects.get().details["ticket"] == "ServiceNow CHG-1"


def test_a_duration_beyond_the_eligibility_end_is_refused(requester):
    role = role_with()
    eligible = eligible_for(requester, role, ends_at=T0 + timedelta(minutes=50))
    before = AuditEvent.objects.count()

    with pytest.raises(services.ActivationError, match="Your eligibility ends at"):
        request_activation(requester, eligible, duration=HOUR)
    assert_nothing_changed(requester, before)

    request = request_activation(requester, eligible, duration=timedelta(minutes=50))
    assert request.ends_at == eligible.ends_at


def test_a_scheduled_start_counts_against_the_eligibility_end(requester):
    eligible = eligible_for(requester, role_with(), ends_at=T0 + 3 * HOUR)
    with pytest.raises(services.ActivationError, match="Your eligibility ends at"):
        request_activation(requester, eligible, starts_at=T0 + 2 * HOUR + timedelta(minutes=1))


# --- Who may ask, and where --------------------------------------------------------------------


def test_a_reduced_scope_within_the_eligibility_is_granted_there(requester):
    role = role_with()
    eligible = eligible_for(requester, role, scope="/apps/payroll")

    request = request_activation(requester, eligible, scope="/apps/payroll/eu")

    assert request.scope == request.active_assignment.scope == "/apps/payroll/eu"
    assert user_holds_role(user=requester, role=role, scope="/apps/payroll/eu/paris")
    assert not user_holds_role(user=requester, role=role, scope="/apps/payroll")
    assert AuditEvent.objects.get().scope == "/apps/payroll/eu"


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ("/", "eligible at /apps/payroll only"),
        ("/apps/hr", "eligible at /apps/payroll only"),
        ("/apps/payrollx", "eligible at /apps/payroll only"),
        ("/subscriptions/nope", "not a valid scope"),
        ("apps/payroll", "not a valid scope"),
    ],
)
def test_a_scope_outside_the_eligibility_is_refused(requester, scope, message):
    eligible = eligible_for(requester, role_with(), scope="/apps/payroll")
    before = AuditEvent.objects.count()

    with pytest.raises(ValidationError, match=message):
        request_activation(requester, eligible, scope=scope)
    assert_nothing_changed(requester, before)


def test_a_group_eligibility_lets_its_members_activate_for_themselves(requester, outsider):
    role = role_with()
    group = DirectoryGroupFactory()
    group.members.add(requester)
    eligible = eligible_for(group, role)

    request = request_activation(requester, eligible)

    assert request.active_assignment.user == requester and request.active_assignment.group is None
    assert user_holds_role(user=requester, role=role)
    assert not user_holds_role(user=outsider, role=role)
    with pytest.raises(services.ActivationError, match="not eligible"):
        request_activation(outsider, eligible)
    assert not ActivationRequest.objects.filter(requester=outsider).exists()


def test_someone_elses_eligibility_cannot_be_used(requester, outsider):
    eligible = eligible_for(requester, role_with())
    with pytest.raises(services.ActivationError, match="not eligible"):
        request_activation(outsider, eligible)


@pytest.mark.parametrize(
    "window",
    [
        {"starts_at": T0 + HOUR, "ends_at": T0 + 10 * HOUR},  # not started yet
        {"starts_at": T0 - 10 * HOUR, "ends_at": T0},  # ended exactly now
        {"ended_at": T0 - timedelta(seconds=1), "end_reason": "removed"},  # removed
    ],
)
def test_an_eligibility_not_in_force_cannot_be_used(requester, window):
    eligible = eligible_for(requester, role_with(), **window)
    with pytest.raises(services.ActivationError, match="not eligible"):
        request_activation(requester, eligible)


def test_a_deactivated_user_cannot_ask(requester):
    eligible = eligible_for(requester, role_with())
    requester.is_active = False
    requester.save()
    with pytest.raises(PermissionDenied, match="deactivated"):
        request_activation(requester, eligible)
    assert not ActivationRequest.objects.exists()


# --- One open activation per role and scope ----------------------------------------------------


def test_activating_an_active_role_again_says_it_is_active_until_when(requester):
    eligible = eligible_for(requester, role_with())
    request_activation(requester, eligible, duration=HOUR)

    with pytest.raises(services.ActivationError, match="already active for you at / until 11:00 UTC"):
        request_activation(requester, eligible)
    assert ActivationRequest.objects.count() == 1


def test_a_second_request_while_one_waits_for_approval_is_refused(requester, approver):
    eligible = eligible_for(requester, role_with(approvers=[approver]))
    request_activation(requester, eligible)

    with pytest.raises(services.ActivationError, match="waiting for approval"):
        request_activation(requester, eligible)


def test_another_scope_of_the_same_role_is_a_separate_activation(requester):
    eligible = eligible_for(requester, role_with(), scope="/apps/payroll")
    request_activation(requester, eligible, scope="/apps/payroll/eu")
    assert request_activation(requester, eligible, scope="/apps/payroll/us").status == Status.GRANTED


def test_the_database_itself_refuses_a_second_open_activation(requester):
    role = role_with()
    first = request_activation(requester, eligible_for(requester, role))
    duplicate = ActivationRequest(
        requester=requester,
        eligible=first.eligible,
        role=role,
        scope="/",
        status=Status.PENDING_APPROVAL,
        duration=HOUR,
        created_at=T0,
        decide_by=T0 + HOUR,
    )
    with pytest.raises(IntegrityError), transaction.atomic():
        duplicate.save()


def test_two_eligibilities_of_one_role_still_give_one_open_activation(requester):
    # Direct and through a group: the check sees the first, whichever eligibility is used.
    role = role_with()
    group = DirectoryGroupFactory()
    group.members.add(requester)
    request_activation(requester, eligible_for(requester, role))

    with pytest.raises(services.ActivationError, match="already active"):
        request_activation(requester, eligible_for(group, role))


# --- Approvers are frozen at request time --------------------------------------------------------


def test_approvers_are_resolved_when_the_request_is_made(requester, approver):
    group = DirectoryGroupFactory()
    group_member = UserFactory()
    group.members.add(group_member)
    role = role_with(approvers=[approver, requester], approver_groups=[group])

    request = request_activation(requester, eligible_for(requester, role))

    frozen = set(RequestApprover.objects.filter(request=request).values_list("user__username", flat=True))
    assert frozen == {approver.username, group_member.username}  # never the requester


def test_a_request_nobody_else_could_approve_is_refused_with_the_reason(requester):
    role = role_with(approvers=[requester])
    before = AuditEvent.objects.count()

    with pytest.raises(services.ActivationError, match="nobody other than you can approve"):
        request_activation(requester, eligible_for(requester, role))
    assert_nothing_changed(requester, before)
    assert not RequestApprover.objects.exists()


def test_a_request_needing_more_approvers_than_remain_is_refused(requester, approver):
    role = role_with(approvers=[approver, requester], approvals_required=2)
    with pytest.raises(services.ActivationError, match="needs 2 approval"):
        request_activation(requester, eligible_for(requester, role))


def test_without_named_approvers_the_role_owners_approve(requester, approver):
    role = role_with(require_approval=True)
    role.owners.add(approver)

    request = request_activation(requester, eligible_for(requester, role))

    assert list(RequestApprover.objects.filter(request=request).values_list("user", flat=True)) == [
        approver.pk
    ]


def test_deactivated_named_approvers_are_not_frozen(requester, approver):
    gone = UserFactory(is_active=False)
    request = request_activation(requester, eligible_for(requester, role_with(approvers=[approver, gone])))
    assert list(RequestApprover.objects.filter(request=request).values_list("user", flat=True)) == [
        approver.pk
    ]
