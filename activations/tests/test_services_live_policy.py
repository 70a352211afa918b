"""Decisions re-check the live policy (README "Decisions re-check the live policy"): the role's
settings and approvers as they are at the decision, not as they were when the request was made."""

from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied

from activations import services
from activations.models import ActivationRequest, RequestApprover
from audit.models import AuditEvent
from roles.services import role_settings_update
from tests.factories import UserFactory

from .helpers import (
    HOUR,
    T0,
    approve,
    deny,
    eligible_for,
    reloaded,
    request_activation,
    request_events,
    role_with,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
CLOCK_START = T0
Status = ActivationRequest.Status


@pytest.fixture
def second_approver(db):
    return UserFactory(username="approver2", display_name="Bea Second")


def change_settings(role, changes=None, **lists):
    """As an administrator would, through the service (actor None: no two-person wait)."""
    role_settings_update(actor=None, role=role, changes=changes or {}, **lists)


def frozen_approvers(request) -> set:
    return set(RequestApprover.objects.filter(request=request).values_list("user__username", flat=True))


# --- The duration ------------------------------------------------------------------------------


def test_a_request_approved_after_the_maximum_was_cut_is_granted_for_the_new_maximum(requester, approver):
    role = role_with(approvers=[approver], activation_max_duration=24 * HOUR)
    request = request_activation(requester, eligible_for(requester, role), duration=24 * HOUR)
    change_settings(role, {"activation_max_duration": HOUR})

    request = approve(approver, request)

    assert request.status == Status.GRANTED
    assert request.ends_at == T0 + HOUR and request.active_assignment.ends_at == T0 + HOUR
    assert (request.duration, request.requested_duration) == (HOUR, 24 * HOUR)
    [event] = request_events(request, "activation.approved")
    assert event.details["duration_seconds"] == 3600
    assert event.details["duration_capped"]["requested_seconds"] == 24 * 3600
    assert event.details["duration_capped"]["granted_seconds"] == 3600
    assert "Capped to 1 hour" in event.details["duration_capped"]["note"]


def test_a_duration_within_the_maximum_is_granted_as_asked(requester, approver):
    role = role_with(approvers=[approver], activation_max_duration=24 * HOUR)
    request = request_activation(requester, eligible_for(requester, role), duration=2 * HOUR)
    change_settings(role, {"activation_max_duration": 4 * HOUR})

    request = approve(approver, request)

    assert (request.duration, request.requested_duration, request.ends_at) == (2 * HOUR, None, T0 + 2 * HOUR)
    assert "duration_capped" not in request_events(request, "activation.approved")[0].details


def test_an_extension_approved_after_the_eligible_maximum_was_cut_extends_by_the_new_maximum(
    requester, approver
):
    role = role_with(approvers=[approver])
    eligible = eligible_for(requester, role, ends_at=T0 + timedelta(days=10))
    request = services.extension_request(
        requester=requester, eligible=eligible, duration=timedelta(days=30), justification="Still needed"
    )
    change_settings(role, {"eligible_max_duration": timedelta(days=20)})

    request = approve(approver, request)

    eligible.refresh_from_db()
    # An extended eligibility lasts at most the maximum from now: 20 days, 10 of them added.
    assert eligible.ends_at == T0 + timedelta(days=20)
    assert (request.duration, request.requested_duration) == (timedelta(days=10), timedelta(days=30))
    assert request_events(request, "extend.approved")[0].details["duration_capped"]["granted_seconds"] == (
        10 * 86400
    )


def test_an_extension_the_new_maximum_leaves_no_room_for_is_not_approved(requester, approver):
    role = role_with(approvers=[approver])
    eligible = eligible_for(requester, role, ends_at=T0 + timedelta(days=10))
    request = services.extension_request(
        requester=requester, eligible=eligible, duration=timedelta(days=30), justification="Still needed"
    )
    change_settings(role, {"eligible_max_duration": timedelta(days=7)})

    with pytest.raises(services.ActivationError, match="cannot be extended. Deny the request"):
        approve(approver, request)
    assert reloaded(request).status == Status.PENDING_APPROVAL


# --- Approval requirements ---------------------------------------------------------------------


def test_once_approval_is_no_longer_required_one_approval_grants(requester, approver, second_approver):
    role = role_with(approvers=[approver, second_approver], approvals_required=2)
    request = request_activation(requester, eligible_for(requester, role))
    change_settings(role, {"require_approval": False})

    request = approve(approver, request)

    assert request.status == Status.GRANTED and request.approvals_required == 1
    assert request_events(request, "activation.approved")[0].details["required"] == 1


def test_a_pending_request_waits_for_an_approval_even_once_approval_is_no_longer_required(
    requester, approver
):
    role = role_with(approvers=[approver])
    request = request_activation(requester, eligible_for(requester, role))
    change_settings(role, {"require_approval": False})

    assert reloaded(request).status == Status.PENDING_APPROVAL  # no grant without a decision
    assert deny(approver, request).status == Status.DENIED


def test_more_approvals_required_now_means_more_approvals(requester, approver, second_approver):
    role = role_with(approvers=[approver, second_approver])
    request = request_activation(requester, eligible_for(requester, role))
    change_settings(role, {"approvals_required": 2})

    request = approve(approver, request)
    assert request.status == Status.PENDING_APPROVAL and request.approvals_required == 2

    assert approve(second_approver, request).status == Status.GRANTED


def test_an_activation_asked_without_mfa_is_not_approved_once_the_role_requires_it(requester, approver):
    role = role_with(approvers=[approver], require_mfa=False)
    request = request_activation(requester, eligible_for(requester, role), mfa_verified_at=None)
    change_settings(role, {"require_mfa": True})
    before = AuditEvent.objects.count()

    with pytest.raises(
        services.ActivationError, match="now requires an MFA check .* requester must ask again"
    ):
        approve(approver, request)

    assert reloaded(request).status == Status.PENDING_APPROVAL
    assert AuditEvent.objects.count() == before and not reloaded(request).approvals.exists()
    assert deny(approver, request, reason="Ask again with MFA").status == Status.DENIED


def test_an_activation_without_a_ticket_the_role_now_requires_is_not_approved(requester, approver):
    role = role_with(approvers=[approver])
    request = request_activation(requester, eligible_for(requester, role))
    change_settings(role, {"require_ticket": True})

    with pytest.raises(services.ActivationError, match="now requires a ticket number"):
        approve(approver, request)


# --- The approvers -----------------------------------------------------------------------------


def test_an_approver_removed_from_the_role_can_no_longer_decide(requester, approver, second_approver):
    role = role_with(approvers=[approver])
    request = request_activation(requester, eligible_for(requester, role))
    change_settings(role, approvers=[second_approver])

    for decide in (approve, deny):
        with pytest.raises(PermissionDenied, match="no longer an approver of"):
            decide(approver, request)

    assert reloaded(request).status == Status.PENDING_APPROVAL and not reloaded(request).approvals.exists()
    refused = request_events(request, "activation.decision_refused")
    assert [(e.actor, e.outcome, e.details["why"], e.details["decision"]) for e in refused] == [
        (approver, "denied", "no longer an approver", "approve"),
        (approver, "denied", "no longer an approver", "deny"),
    ]
    assert approve(second_approver, request).status == Status.GRANTED


def test_the_refused_approver_hands_the_request_to_the_current_approvers(
    requester, approver, second_approver, django_capture_on_commit_callbacks
):
    role = role_with(approvers=[approver])
    request = request_activation(requester, eligible_for(requester, role))
    change_settings(role, approvers=[second_approver])

    with django_capture_on_commit_callbacks(execute=True), pytest.raises(PermissionDenied):
        approve(approver, request)

    assert frozen_approvers(request) == {"approver", "approver2"}  # the removed one stays, on record
    [added] = request_events(request, "activation.approvers_added")
    assert added.details["added"] == [second_approver.label]
    [message] = mail.outbox
    assert message.to == [second_approver.email]
    assert request.role.name in message.subject and f"/{request.pk}/?t=" in message.body


def test_approvers_named_on_the_role_are_asked_about_its_pending_requests_at_once(
    requester, approver, second_approver, django_capture_on_commit_callbacks
):
    role = role_with(approvers=[approver])
    request = request_activation(requester, eligible_for(requester, role))
    other = UserFactory(username="other")
    decided = request_activation(other, eligible_for(other, role))
    deny(approver, decided)

    with django_capture_on_commit_callbacks(execute=True):
        change_settings(role, approvers=[second_approver])

    assert frozen_approvers(request) == {"approver", "approver2"}
    assert frozen_approvers(decided) == {"approver"}  # only pending requests
    [message] = mail.outbox
    assert message.to == [second_approver.email] and f"/{request.pk}/?t=" in message.body
    assert approve(second_approver, request).status == Status.GRANTED


def test_approvers_added_to_the_role_join_the_request_at_the_next_decision(
    requester, approver, second_approver, django_capture_on_commit_callbacks
):
    third = UserFactory(username="approver3")
    role = role_with(approvers=[approver, second_approver], approvals_required=2)
    request = request_activation(requester, eligible_for(requester, role))
    change_settings(role, approvers=[approver, second_approver, third])

    with django_capture_on_commit_callbacks(execute=True):
        approve(approver, request)

    assert frozen_approvers(request) == {"approver", "approver2", "approver3"}
    assert [m.to for m in mail.outbox] == [[third.email]]
    assert approve(third, request).status == Status.GRANTED


def test_the_requester_never_joins_their_own_request_as_an_approver(requester, approver):
    role = role_with(approvers=[approver])
    request = request_activation(requester, eligible_for(requester, role))
    change_settings(role, approvers=[approver, requester])

    approve(approver, request)

    assert frozen_approvers(request) == {"approver"}


# --- Extensions and renewals need the role's approvals --------------------------------------


def test_an_extension_of_a_role_that_requires_two_approvals_needs_two(requester, approver, second_approver):
    role = role_with(approvers=[approver, second_approver], approvals_required=2)
    eligible = eligible_for(requester, role, ends_at=T0 + timedelta(days=10))
    request = services.extension_request(
        requester=requester, eligible=eligible, duration=timedelta(days=30), justification="Still needed"
    )
    assert request.approvals_required == 2

    request = approve(approver, request)
    eligible.refresh_from_db()
    assert request.status == Status.PENDING_APPROVAL and eligible.ends_at == T0 + timedelta(days=10)

    request = approve(second_approver, request)
    eligible.refresh_from_db()
    assert request.status == Status.GRANTED and eligible.ends_at == T0 + timedelta(days=40)


def test_a_renewal_of_a_role_that_requires_two_approvals_needs_two(requester, approver, second_approver):
    role = role_with(approvers=[approver, second_approver], approvals_required=2)
    lapsed = eligible_for(requester, role, starts_at=T0 - timedelta(days=60), ends_at=T0 - timedelta(days=5))
    request = services.renewal_request(
        requester=requester, eligible=lapsed, duration=timedelta(days=30), justification="Back on it"
    )

    assert approve(approver, request).status == Status.PENDING_APPROVAL
    assert approve(second_approver, request).status == Status.GRANTED


def test_an_extension_is_refused_when_fewer_people_than_required_could_approve(requester, approver):
    role = role_with(approvers=[approver, requester], approvals_required=2)
    eligible = eligible_for(requester, role, ends_at=T0 + timedelta(days=10))

    with pytest.raises(services.ActivationError, match="needs 2 approval"):
        services.extension_request(
            requester=requester, eligible=eligible, duration=timedelta(days=30), justification="x"
        )
