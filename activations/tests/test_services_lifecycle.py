"""After the request: cancel, deactivate, revoke, what roles and accounts do to a request
(receivers), extension and renewal, and the transition table itself (SPEC 2.3)."""

from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError

from accounts.services import group_member_remove, user_deactivate
from activations import services
from activations.models import ActivationRequest, TransitionNotAllowed
from audit.models import AuditEvent
from roles.models import ActiveAssignment, DirectoryOperation, EligibleAssignment
from roles.selectors import user_holds_role
from roles.services import active_remove, eligible_remove
from tests.factories import DirectoryGroupFactory, UserFactory

from .helpers import (
    HOUR,
    T0,
    approve,
    deny,
    eligible_for,
    reloaded,
    request_actions,
    request_activation,
    request_events,
    role_with,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
CLOCK_START = T0  # the shared `clock` fixture (root conftest) stops time here

Status = ActivationRequest.Status


def granted(requester, **kwargs):
    return request_activation(requester, eligible_for(requester, role_with()), **kwargs)


def pending(requester, approver, **settings):
    return request_activation(requester, eligible_for(requester, role_with(approvers=[approver], **settings)))


# --- Cancel ------------------------------------------------------------------------------------


def test_the_requester_cancels_a_pending_request_and_approvers_are_told(
    requester, approver, django_capture_on_commit_callbacks
):
    request = pending(requester, approver)

    with django_capture_on_commit_callbacks(execute=True):
        request = services.activation_cancel(actor=requester, request=request)

    assert request.status == Status.CANCELED and request.closed_at == T0
    [event] = request_events(request, "activation.canceled")
    assert event.actor == requester
    [message] = mail.outbox
    assert message.to == [approver.email] and "canceled" in message.subject


def test_a_pim_administrator_may_cancel_someone_elses_request(requester, approver, admin):
    request = services.activation_cancel(actor=admin, request=pending(requester, approver))
    assert request.status == Status.CANCELED
    assert request_events(request, "activation.canceled")[0].actor == admin


def test_an_outsider_cannot_cancel(requester, approver, outsider):
    request = pending(requester, approver)
    with pytest.raises(PermissionDenied):
        services.activation_cancel(actor=outsider, request=request)
    assert reloaded(request).status == Status.PENDING_APPROVAL


def test_a_canceled_request_can_no_longer_be_approved(requester, approver):
    request = services.activation_cancel(actor=requester, request=pending(requester, approver))
    with pytest.raises(services.ActivationError, match="already canceled"):
        approve(approver, request)


# --- Deactivate --------------------------------------------------------------------------------


def test_the_requester_deactivates_early_and_access_ends_now(requester, clock):
    request = granted(requester, duration=2 * HOUR)
    clock.move_to(T0 + HOUR, tick=False)

    request = services.activation_deactivate(requester=requester, request=request)

    assert request.status == Status.DEACTIVATED and request.closed_at == T0 + HOUR
    assignment = request.active_assignment
    assignment.refresh_from_db()
    assert (assignment.ended_at, assignment.end_reason, assignment.ended_by) == (
        T0 + HOUR,
        ActiveAssignment.EndReason.DEACTIVATED,
        requester,
    )
    assert not user_holds_role(user=requester, role=request.role)
    assert request_actions(request) == ["activation.granted", "activation.deactivated"]
    assert AuditEvent.objects.filter(action="activation.deactivated").get().actor == requester
    assert list(DirectoryOperation.objects.values_list("operation", flat=True).order_by("pk")) == [
        "grant",
        "revoke",
    ]


def test_only_the_requester_deactivates(requester, outsider):
    request = granted(requester)
    with pytest.raises(PermissionDenied):
        services.activation_deactivate(requester=outsider, request=request)
    assert reloaded(request).status == Status.GRANTED


def test_an_activation_past_its_end_cannot_be_deactivated(requester, clock):
    request = granted(requester)
    clock.move_to(T0 + HOUR, tick=False)
    with pytest.raises(services.ActivationError, match="already ended"):
        services.activation_deactivate(requester=requester, request=request)
    assert reloaded(request).status == Status.GRANTED  # the expiry job closes it


def test_a_scheduled_activation_can_be_deactivated_before_it_starts(requester):
    request = granted(requester, starts_at=T0 + 3 * HOUR)
    request = services.activation_deactivate(requester=requester, request=request)
    assert request.status == Status.DEACTIVATED
    assert not user_holds_role(user=requester, role=request.role, at=T0 + 3 * HOUR)


# --- Revoke ------------------------------------------------------------------------------------


def test_an_administrator_revokes_with_a_reason_and_the_requester_is_told(
    requester, admin, django_capture_on_commit_callbacks
):
    request = granted(requester)

    with django_capture_on_commit_callbacks(execute=True):
        request = services.activation_revoke(actor=admin, request=request, reason="Suspicious sign-in")

    assert request.status == Status.REVOKED
    assert reloaded(request).active_assignment.end_reason == ActiveAssignment.EndReason.REVOKED
    assert not user_holds_role(user=requester, role=request.role)
    [event] = request_events(request, "activation.revoked")
    assert (event.actor, event.details["reason"]) == (admin, "Suspicious sign-in")
    assert request_actions(request) == ["activation.granted", "activation.revoked"]
    [message] = mail.outbox
    assert message.to == [requester.email] and "Suspicious sign-in" in message.body


def test_a_revoke_needs_a_reason_and_an_administrator(requester, outsider, admin):
    request = granted(requester)
    with pytest.raises(PermissionDenied):
        services.activation_revoke(actor=outsider, request=request, reason="Because")
    with pytest.raises(ValidationError, match="reason is required"):
        services.activation_revoke(actor=admin, request=request, reason="")
    assert reloaded(request).status == Status.GRANTED
    assert request_actions(request) == ["activation.granted", "admin.permission_denied"]
    [refused] = AuditEvent.objects.filter(action="admin.permission_denied")
    assert (refused.actor, refused.outcome, refused.details["attempted"]) == (
        outsider,
        "denied",
        "activation_revoke",
    )
    assert refused.target_id == str(request.pk)


# --- The transition table: every illegal move is a clear error and changes nothing ------------


def _to_state(status, requester, approver):
    request = pending(requester, approver)
    if status == Status.DENIED:
        return deny(approver, request)
    if status == Status.CANCELED:
        return services.activation_cancel(actor=requester, request=request)
    if status == Status.TIMED_OUT:
        from activations.jobs import activation_timeout_due

        activation_timeout_due(now=request.decide_by)
        return reloaded(request)
    if status == Status.PENDING_APPROVAL:
        return request
    request = approve(approver, request)
    if status == Status.GRANTED:
        return request
    if status == Status.DEACTIVATED:
        return services.activation_deactivate(requester=requester, request=request)
    if status == Status.REVOKED:
        return services.activation_revoke(actor=None, request=request, reason="Review")
    from activations.jobs import activation_expire_due

    activation_expire_due(now=request.ends_at)
    return reloaded(request)


MOVES = {
    "approve": lambda r, requester, approver: approve(approver, r),
    "deny": lambda r, requester, approver: deny(approver, r),
    "cancel": lambda r, requester, approver: services.activation_cancel(actor=requester, request=r),
    "deactivate": lambda r, requester, approver: services.activation_deactivate(
        requester=requester, request=r
    ),
    "revoke": lambda r, requester, approver: services.activation_revoke(actor=None, request=r, reason="x"),
}
LEGAL = {
    Status.PENDING_APPROVAL: {"approve", "deny", "cancel"},
    Status.GRANTED: {"deactivate", "revoke"},
}
ILLEGAL = [
    (status, move) for status in Status.values for move in MOVES if move not in LEGAL.get(status, set())
]


@pytest.mark.parametrize(("status", "move"), ILLEGAL)
def test_an_illegal_transition_is_refused_and_changes_nothing(requester, approver, status, move):
    request = _to_state(status, requester, approver)
    assert request.status == status
    before = AuditEvent.objects.count()

    with pytest.raises((TransitionNotAllowed, services.ActivationError)) as error:
        MOVES[move](request, requester, approver)

    assert str(error.value.messages[0] if hasattr(error.value, "messages") else error.value).startswith(
        "This request"
    )
    assert reloaded(request).status == status
    assert AuditEvent.objects.count() == before


def test_cancelling_a_granted_activation_says_what_to_do_instead(requester):
    request = granted(requester)
    with pytest.raises(TransitionNotAllowed, match="This request is granted; it cannot become canceled."):
        services.activation_cancel(actor=requester, request=request)


def test_deactivating_a_pending_request_is_refused(requester, approver):
    request = pending(requester, approver)
    with pytest.raises(TransitionNotAllowed, match="pending approval; it cannot become deactivated"):
        services.activation_deactivate(requester=requester, request=request)
    assert not ActiveAssignment.objects.exists()


# --- Changes made in roles and accounts close the request (receivers) --------------------------


def test_removing_the_eligibility_closes_the_activation_as_revoked(requester, admin):
    request = granted(requester)

    eligible_remove(actor=admin, assignment=request.eligible, reason="Left the team")

    request = reloaded(request)
    assert request.status == Status.REVOKED and request.closed_at == T0
    assert not user_holds_role(user=requester, role=request.role)
    [event] = request_events(request, "activation.revoked")
    assert (event.actor, event.details["because"]) == (admin, "assignment removed")
    assert request_actions(request) == ["activation.granted", "activation.revoked"]


def test_removing_the_eligibility_also_ends_a_scheduled_activation(requester, admin):
    request = granted(requester, starts_at=T0 + 2 * HOUR)

    eligible_remove(actor=admin, assignment=request.eligible, reason="Left the team")

    assert reloaded(request).status == Status.REVOKED
    assert not user_holds_role(user=requester, role=request.role, at=T0 + 2 * HOUR)


def test_an_administrator_removing_the_active_assignment_revokes_the_activation(requester, admin):
    request = granted(requester)

    active_remove(actor=admin, assignment=request.active_assignment, reason="Incident")

    request = reloaded(request)
    assert request.status == Status.REVOKED
    assert request_events(request, "activation.revoked")[0].actor == admin
    assert AuditEvent.objects.filter(action="active_assignment.removed").count() == 1


def test_leaving_the_group_ends_an_activation_of_the_groups_eligibility(requester, admin):
    group = DirectoryGroupFactory()
    group.members.add(requester)
    request = request_activation(requester, eligible_for(group, role_with()))

    group_member_remove(actor=None, group=group, user=requester)

    assert reloaded(request).status == Status.REVOKED
    assert not user_holds_role(user=requester, role=request.role)


def test_deactivating_a_user_cancels_their_pending_requests_and_revokes_their_activations(
    requester, approver, django_capture_on_commit_callbacks
):
    waiting = pending(requester, approver)
    active = granted(requester)

    with django_capture_on_commit_callbacks(execute=True):
        user_deactivate(actor=None, user=requester, reason="Left the company")

    waiting, active = reloaded(waiting), reloaded(active)
    assert waiting.status == Status.CANCELED
    [event] = request_events(waiting, "activation.canceled")
    assert event.actor is None and event.details["because"] == "requester deactivated"
    assert active.status == Status.REVOKED
    assert request_actions(active) == ["activation.granted", "activation.revoked"]
    # The approver of the canceled request hears it is closed.
    assert [m.to for m in mail.outbox if "canceled" in m.subject] == [[approver.email]]


# --- Extension and renewal go through approval like an activation ------------------------------


def test_an_eligibility_ending_soon_is_extended_after_approval(requester, approver):
    role = role_with(approvers=[approver])
    eligible = eligible_for(requester, role, ends_at=T0 + timedelta(days=10))

    request = services.extension_request(
        requester=requester,
        eligible=eligible,
        duration=timedelta(days=30),
        justification="Still on the project",
    )
    assert request.status == Status.PENDING_APPROVAL and request.kind == "extend"
    assert request_actions(request) == ["extend.requested"]

    request = approve(approver, request)

    assert request.status == Status.GRANTED and request.closed_at == T0
    eligible.refresh_from_db()
    assert eligible.ends_at == T0 + timedelta(days=40)
    assert request_actions(request) == ["extend.requested", "extend.approved"]
    assert AuditEvent.objects.filter(action="eligible_assignment.extended").count() == 1


@pytest.mark.parametrize("move", ["deactivate", "revoke"])
def test_an_approved_extension_is_not_an_activation_to_deactivate_or_revoke(requester, approver, move):
    eligible = eligible_for(requester, role_with(approvers=[approver]), ends_at=T0 + timedelta(days=10))
    request = services.extension_request(
        requester=requester, eligible=eligible, duration=timedelta(days=30), justification="More"
    )
    request = approve(approver, request)
    before = AuditEvent.objects.count()

    with pytest.raises(services.ActivationError, match="Only an activation"):
        MOVES[move](request, requester, approver)
    assert reloaded(request).status == Status.GRANTED
    assert AuditEvent.objects.count() == before


def test_an_extension_is_only_for_an_eligibility_ending_within_14_days(requester, approver):
    eligible = eligible_for(requester, role_with(approvers=[approver]), ends_at=T0 + timedelta(days=15))
    with pytest.raises(services.ActivationError, match="within the next 14 days"):
        services.extension_request(
            requester=requester, eligible=eligible, duration=timedelta(days=30), justification="More"
        )
    assert not ActivationRequest.objects.exists()


def test_a_second_pending_extension_is_refused(requester, approver):
    eligible = eligible_for(requester, role_with(approvers=[approver]), ends_at=T0 + timedelta(days=3))
    kwargs = {
        "requester": requester,
        "eligible": eligible,
        "duration": timedelta(days=30),
        "justification": "x",
    }
    services.extension_request(**kwargs)
    with pytest.raises(services.ActivationError, match="already have a pending request"):
        services.extension_request(**kwargs)


def test_an_eligibility_that_lapsed_recently_is_renewed_after_approval(requester, approver):
    role = role_with(approvers=[approver])
    eligible = eligible_for(
        requester, role, starts_at=T0 - timedelta(days=60), ends_at=T0 - timedelta(days=5)
    )

    request = services.renewal_request(
        requester=requester,
        eligible=eligible,
        duration=timedelta(days=90),
        justification="Back on the project",
    )
    request = approve(approver, request)

    assert request.status == Status.GRANTED
    renewed = EligibleAssignment.objects.exclude(pk=eligible.pk).get()
    assert (renewed.starts_at, renewed.ends_at) == (T0, T0 + timedelta(days=90))
    assert request_actions(request) == ["renew.requested", "renew.approved"]


def test_a_renewal_can_be_denied(requester, approver):
    role = role_with(approvers=[approver])
    eligible = eligible_for(
        requester, role, starts_at=T0 - timedelta(days=60), ends_at=T0 - timedelta(days=5)
    )
    request = services.renewal_request(
        requester=requester, eligible=eligible, duration=timedelta(days=90), justification="Back"
    )
    request = deny(approver, request, reason="Project over")
    assert request_actions(request) == ["renew.requested", "renew.denied"]
    assert EligibleAssignment.objects.count() == 1


def test_a_removed_eligibility_cannot_be_renewed(requester, approver, admin):
    eligible = eligible_for(requester, role_with(approvers=[approver]))
    eligible_remove(actor=admin, assignment=eligible)
    with pytest.raises(services.ActivationError, match="was removed"):
        services.renewal_request(
            requester=requester, eligible=eligible, duration=timedelta(days=30), justification="Please"
        )


def test_a_group_eligibility_is_not_extended_by_one_member(requester, approver):
    group = DirectoryGroupFactory()
    group.members.add(requester, UserFactory())
    eligible = eligible_for(group, role_with(approvers=[approver]), ends_at=T0 + timedelta(days=3))
    with pytest.raises(services.ActivationError, match="not a group"):
        services.extension_request(
            requester=requester, eligible=eligible, duration=timedelta(days=30), justification="More"
        )
