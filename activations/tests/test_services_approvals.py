"""Deciding requests (SPEC 2.4): frozen approvers, N-of-M, one denial ends it, the first
decision wins, the eligibility is re-checked at the decision, and everyone is told."""

from datetime import timedelta

import pytest
from django.core import mail
from django.core.exceptions import PermissionDenied, ValidationError

from accounts.services import user_deactivate
from activations import services
from activations.models import ActivationRequest, Approval
from audit.models import AuditEvent
from roles.models import ActiveAssignment
from roles.selectors import user_holds_role
from roles.services import eligible_remove
from tests.factories import UserFactory

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


@pytest.fixture
def second_approver(db):
    return UserFactory(username="approver2", display_name="Bea Second")


def pending_request(requester, *approvers, **settings):
    role = role_with(approvers=approvers, **settings)
    return request_activation(requester, eligible_for(requester, role))


def assert_still_pending(request, events_before):
    request = reloaded(request)
    assert request.status == Status.PENDING_APPROVAL
    assert request.active_assignment is None
    assert AuditEvent.objects.count() == events_before


# --- One approval ------------------------------------------------------------------------------


def test_an_approval_grants_and_writes_one_approved_event(requester, approver):
    request = pending_request(requester, approver)

    request = approve(approver, request, reason="On call")

    assert request.status == Status.GRANTED
    assert (request.decided_by, request.decided_at, request.decision_reason) == (approver, T0, "On call")
    assert user_holds_role(user=requester, role=request.role)
    [event] = request_events(request, "activation.approved")
    assert (event.actor, event.details["reason"]) == (approver, "On call")
    assert (event.details["approvals"], event.details["required"], event.details["granted"]) == (1, 1, True)
    assert request_actions(request) == ["activation.requested", "activation.approved"]


def test_a_denial_needs_a_reason_and_ends_the_request(requester, approver):
    request = pending_request(requester, approver)
    before = AuditEvent.objects.count()

    with pytest.raises(ValidationError, match="reason is required"):
        deny(approver, request, reason="  ")
    assert_still_pending(request, before)

    request = deny(approver, request, reason="Change freeze")
    assert request.status == Status.DENIED and request.closed_at == T0
    assert (request.decided_by, request.decision_reason) == (approver, "Change freeze")
    assert not ActiveAssignment.objects.exists()
    [event] = request_events(request, "activation.denied")
    assert (event.actor, event.details["reason"]) == (approver, "Change freeze")


def test_approving_a_denied_request_says_who_denied_it(requester, approver, second_approver):
    request = pending_request(requester, approver, second_approver)
    deny(approver, request)
    before = AuditEvent.objects.count()

    with pytest.raises(services.ActivationError, match="already denied by Arne Approver at 2026-03-02 10:00"):
        approve(second_approver, request)
    assert reloaded(request).status == Status.DENIED
    assert AuditEvent.objects.count() == before


def test_a_second_approval_is_told_who_granted(requester, approver, second_approver):
    request = pending_request(requester, approver, second_approver)
    approve(approver, request)

    with pytest.raises(services.ActivationError, match="already granted by Arne Approver"):
        approve(second_approver, request)
    with pytest.raises(services.ActivationError, match="already granted by Arne Approver"):
        deny(second_approver, request)
    assert len(request_events(request, "activation.approved")) == 1
    assert Approval.objects.count() == 1


# --- Who may decide ----------------------------------------------------------------------------


def test_the_requester_cannot_decide_their_own_request_even_if_listed(requester, approver):
    request = pending_request(requester, approver, requester)
    before = AuditEvent.objects.count()

    for decide in (approve, deny):
        with pytest.raises(PermissionDenied, match="your own request"):
            decide(requester, request)
    # Nothing changed but the record of the two refused tries (README "Refusals are audited").
    assert_still_pending(request, before + 2)
    refused = request_events(request, "activation.self_approval_refused")
    assert [(e.actor, e.outcome, e.details["decision"]) for e in refused] == [
        (requester, "denied", "approve"),
        (requester, "denied", "deny"),
    ]


def test_someone_not_frozen_on_the_request_cannot_decide(requester, approver, outsider):
    request = pending_request(requester, approver)
    with pytest.raises(PermissionDenied, match="not an approver"):
        approve(outsider, request)
    [refused] = request_events(request, "activation.decision_refused")
    assert (refused.actor, refused.outcome, refused.details["why"]) == (outsider, "denied", "not an approver")


def test_a_decision_needs_a_fresh_mfa_verification(requester, approver, settings):
    request = pending_request(requester, approver)
    before = AuditEvent.objects.count()
    stale = T0 - settings.PIM_STEP_UP_WINDOW - timedelta(seconds=1)

    for mfa_verified_at in (None, stale):
        with pytest.raises(services.ActivationError, match="fresh code"):
            services.activation_approve(approver=approver, request=request, mfa_verified_at=mfa_verified_at)
        with pytest.raises(services.ActivationError, match="fresh code"):
            services.activation_deny(
                approver=approver, request=request, reason="No", mfa_verified_at=mfa_verified_at
            )
    assert_still_pending(request, before)


def test_a_deactivated_approver_cannot_decide(requester, approver, second_approver):
    request = pending_request(requester, approver, second_approver)
    user_deactivate(actor=None, user=approver, reason="Left")
    before = AuditEvent.objects.count()

    with pytest.raises(PermissionDenied, match="deactivated account cannot approve"):
        approve(approver, request)
    assert_still_pending(request, before)
    assert approve(second_approver, request).status == Status.GRANTED


def test_a_decision_after_the_deadline_is_refused_even_before_the_timeout_job(requester, approver):
    request = pending_request(requester, approver, approval_timeout=timedelta(hours=2))
    before = AuditEvent.objects.count()

    with pytest.raises(services.ActivationError, match="timed out"):
        approve(approver, request, now=T0 + 2 * HOUR)
    assert_still_pending(request, before)
    assert approve(approver, request, now=T0 + 2 * HOUR - timedelta(seconds=1)).status == Status.GRANTED


# --- N of M ------------------------------------------------------------------------------------


def test_two_distinct_approvals_are_needed_when_the_role_requires_two(requester, approver, second_approver):
    request = pending_request(requester, approver, second_approver, UserFactory(), approvals_required=2)

    request = approve(approver, request)
    assert request.status == Status.PENDING_APPROVAL and request.active_assignment is None
    first = request_events(request, "activation.approved")[-1]
    assert (first.actor, first.details["approvals"], first.details["granted"]) == (approver, 1, False)

    before = AuditEvent.objects.count()
    with pytest.raises(services.ActivationError, match="already approved"):
        approve(approver, request)
    assert_still_pending(request, before)

    request = approve(second_approver, request)
    assert request.status == Status.GRANTED and request.decided_by == second_approver
    second = request_events(request, "activation.approved")[-1]
    assert (second.actor, second.details["approvals"], second.details["granted"]) == (
        second_approver,
        2,
        True,
    )
    assert request_actions(request) == ["activation.requested", "activation.approved", "activation.approved"]


def test_one_denial_ends_a_request_that_already_has_an_approval(requester, approver, second_approver):
    request = pending_request(requester, approver, second_approver, UserFactory(), approvals_required=2)
    approve(approver, request)

    request = deny(second_approver, request)

    assert request.status == Status.DENIED and not ActiveAssignment.objects.exists()
    assert request_actions(request)[-1] == "activation.denied"


def test_an_approver_who_approved_cannot_then_deny(requester, approver, second_approver):
    request = pending_request(requester, approver, second_approver, UserFactory(), approvals_required=2)
    approve(approver, request)
    before = AuditEvent.objects.count()

    with pytest.raises(services.ActivationError, match="already approved"):
        deny(approver, request)
    assert_still_pending(request, before)


# --- The eligibility is re-checked at the decision ---------------------------------------------


def test_approval_after_the_eligibility_was_removed_fails_cleanly(requester, approver):
    request = pending_request(requester, approver)
    eligible_remove(actor=None, assignment=request.eligible, reason="Left the team")
    before = AuditEvent.objects.count()

    with pytest.raises(services.ActivationError, match="no longer eligible"):
        approve(approver, request)

    # Nothing of the refused approval remains; the request waits for a denial, a cancel or
    # its timeout like any other undecided request.
    assert_still_pending(request, before)
    assert not Approval.objects.exists()
    assert not user_holds_role(user=requester, role=request.role)
    assert deny(approver, request, reason="No longer eligible").status == Status.DENIED


def test_a_recorded_removal_of_the_eligibility_wins_over_an_earlier_decision_time(requester, approver):
    # The approver's clock (`now`) was read just before the removal committed: the removal is
    # the live state and the approval must not grant from a removed eligibility.
    request = pending_request(requester, approver)
    eligible_remove(actor=None, assignment=request.eligible, now=T0 + timedelta(minutes=30))

    with pytest.raises(services.ActivationError, match="no longer eligible"):
        approve(approver, request, now=T0 + timedelta(minutes=29))
    assert not ActiveAssignment.objects.filter(ended_at__isnull=True).exists()


def test_a_grant_never_outlasts_the_eligibility(requester, approver):
    role = role_with(approvers=[approver])
    eligible = eligible_for(requester, role, ends_at=T0 + timedelta(hours=2, minutes=30))
    request = request_activation(requester, eligible, duration=2 * HOUR)

    request = approve(approver, request, now=T0 + HOUR)

    assert request.ends_at == request.active_assignment.ends_at == eligible.ends_at


def test_a_grant_that_would_be_shorter_than_five_minutes_is_refused(requester, approver):
    eligible = eligible_for(requester, role_with(approvers=[approver]), ends_at=T0 + 2 * HOUR)
    request = request_activation(requester, eligible, duration=HOUR)

    with pytest.raises(services.ActivationError, match="ends too soon"):
        approve(approver, request, now=T0 + 2 * HOUR - timedelta(minutes=4))
    assert reloaded(request).status == Status.PENDING_APPROVAL


# --- Notifications -----------------------------------------------------------------------------


def test_each_approver_gets_an_approval_email_with_their_own_link(
    requester, approver, second_approver, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        request = pending_request(requester, approver, second_approver)

    assert sorted(message.to[0] for message in mail.outbox) == sorted([approver.email, second_approver.email])
    links = set()
    for message in mail.outbox:
        assert request.role.name in message.subject
        assert "Incident 42" in message.body
        [link] = [word for word in message.body.split() if f"/{request.pk}/?t=" in word]
        assert link in message.alternatives[0][0].replace("&amp;", "&")
        links.add(link)
    assert len(links) == 2  # bound to each approver


def test_the_requester_and_every_approver_hear_the_outcome(
    requester, approver, second_approver, django_capture_on_commit_callbacks
):
    request = pending_request(requester, approver, second_approver)

    with django_capture_on_commit_callbacks(execute=True):
        approve(approver, request)

    assert sorted(message.to[0] for message in mail.outbox) == sorted(
        [requester.email, approver.email, second_approver.email]
    )
    assert all("Granted" in message.subject for message in mail.outbox)
    assert all("by Arne Approver" in message.body for message in mail.outbox)


def test_a_denial_tells_the_requester_and_approvers_with_the_reason(
    requester, approver, second_approver, django_capture_on_commit_callbacks
):
    request = pending_request(requester, approver, second_approver)

    with django_capture_on_commit_callbacks(execute=True):
        deny(approver, request, reason="Change freeze")

    assert len(mail.outbox) == 3
    assert all("Denied" in m.subject and "Change freeze" in m.body for m in mail.outbox)


def test_a_first_of_two_approvals_tells_nobody_yet(
    requester, approver, second_approver, django_capture_on_commit_callbacks
):
    request = pending_request(requester, approver, second_approver, approvals_required=2)
    with django_capture_on_commit_callbacks(execute=True):
        approve(approver, request)
    assert mail.outbox == []


def test_a_role_without_approval_tells_the_requester_it_is_granted(
    requester, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        request_activation(requester, eligible_for(requester, role_with()))

    [message] = mail.outbox
    assert message.to == [requester.email]
