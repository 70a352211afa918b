"""Extending and renewing one's own direct active assignment (SPEC 2.2: ending within 14 days,
ended within the last 30), approved like an eligibility's extension or renewal."""

from datetime import timedelta

import pytest

from activations import services
from activations.models import ActivationRequest
from audit.models import AuditEvent
from roles.models import ActiveAssignment
from tests.factories import ActiveAssignmentFactory, DirectoryGroupFactory

from .helpers import T0, approve, deny, eligible_for, reloaded, request_actions, request_activation, role_with

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
CLOCK_START = T0
DAY = timedelta(days=1)
Status = ActivationRequest.Status


@pytest.fixture
def role(approver):
    return role_with(approvers=[approver], name="Vault Keeper")


def direct(user, role, *, ends_at, starts_at=None, **fields):
    return ActiveAssignmentFactory(
        user=user, role=role, starts_at=starts_at or T0 - 60 * DAY, ends_at=ends_at, **fields
    )


def test_a_direct_assignment_ending_soon_is_extended_once_approved(requester, approver, role):
    assignment = direct(requester, role, ends_at=T0 + 3 * DAY)

    request = services.active_extension_request(
        requester=requester, assignment=assignment, duration=30 * DAY, justification="Still on call"
    )

    assert request.kind == "extend" and request.active_target == assignment and request.eligible is None
    assert request_actions(request) == ["extend.requested"]
    approve(approver, request)
    assignment.refresh_from_db()
    assert assignment.ends_at == T0 + 33 * DAY
    assert reloaded(request).status == Status.GRANTED
    assert AuditEvent.objects.filter(
        action="active_assignment.extended", target_id=str(assignment.pk)
    ).exists()


def test_a_denied_extension_leaves_the_assignment_alone(requester, approver, role):
    assignment = direct(requester, role, ends_at=T0 + 3 * DAY)
    request = services.active_extension_request(
        requester=requester, assignment=assignment, duration=30 * DAY, justification="Still on call"
    )

    deny(approver, request)

    assignment.refresh_from_db()
    assert assignment.ends_at == T0 + 3 * DAY


def test_a_direct_assignment_ended_lately_is_renewed_from_the_approval(requester, approver, role, clock):
    ended = direct(requester, role, ends_at=T0 - 5 * DAY)
    request = services.active_renewal_request(
        requester=requester, assignment=ended, duration=10 * DAY, justification="Back"
    )
    clock.shift(timedelta(hours=2))

    approve(approver, request)

    renewed = ActiveAssignment.objects.filter(user=requester, role=role).exclude(pk=ended.pk).get()
    assert renewed.starts_at == T0 + timedelta(hours=2) and renewed.ends_at == renewed.starts_at + 10 * DAY
    assert renewed.origin == ActiveAssignment.Origin.DIRECT


@pytest.mark.parametrize(
    ("service", "ends_in", "message"),
    [
        ("active_extension_request", 20 * DAY, "ending within the next 14 days"),
        ("active_extension_request", -DAY, "ending within the next 14 days"),
        ("active_renewal_request", -40 * DAY, "ended within the last 30 days"),
        ("active_renewal_request", DAY, "ended within the last 30 days"),
    ],
)
def test_outside_the_windows_is_refused(requester, role, service, ends_in, message):
    assignment = direct(requester, role, ends_at=T0 + ends_in)

    with pytest.raises(services.ActivationError, match=message):
        getattr(services, service)(
            requester=requester, assignment=assignment, duration=DAY, justification="x"
        )
    assert not ActivationRequest.objects.exists()


def test_a_groups_or_someone_elses_assignment_is_refused(requester, outsider, role):
    group = DirectoryGroupFactory()
    group.members.add(requester)
    groups = ActiveAssignmentFactory(user=None, group=group, role=role, ends_at=T0 + DAY)
    theirs = direct(outsider, role, ends_at=T0 + DAY)

    for assignment in (groups, theirs):
        with pytest.raises(services.ActivationError, match="Only your own"):
            services.active_extension_request(
                requester=requester, assignment=assignment, duration=DAY, justification="x"
            )


def test_an_activation_is_not_extended_but_activated_again(requester, role):
    activation = request_activation(requester, eligible_for(requester, role_with(name="Quick Role")))

    with pytest.raises(services.ActivationError, match="activate the role again"):
        services.active_extension_request(
            requester=requester, assignment=activation.active_assignment, duration=DAY, justification="x"
        )


def test_asking_twice_says_one_is_waiting(requester, role):
    assignment = direct(requester, role, ends_at=T0 + DAY)
    services.active_extension_request(
        requester=requester, assignment=assignment, duration=DAY, justification="x"
    )

    with pytest.raises(services.ActivationConflict, match="already have a pending request"):
        services.active_extension_request(
            requester=requester, assignment=assignment, duration=DAY, justification="x"
        )


def test_the_duration_is_bounded_by_the_roles_active_maximum(requester, role):
    assignment = direct(requester, role, ends_at=T0 + DAY)

    with pytest.raises(services.ActivationError, match="between 5 minutes and 180 days"):
        services.active_extension_request(
            requester=requester, assignment=assignment, duration=200 * DAY, justification="x"
        )


def test_the_approval_caps_an_extension_to_the_active_maximum_from_now(requester, approver, role):
    assignment = direct(requester, role, ends_at=T0 + 10 * DAY)
    request = services.active_extension_request(
        requester=requester, assignment=assignment, duration=175 * DAY, justification="x"
    )

    approve(approver, request)

    assignment.refresh_from_db()
    assert assignment.ends_at == T0 + 180 * DAY  # 10 days left + 170 capped, not 185
    assert reloaded(request).requested_duration == 175 * DAY
