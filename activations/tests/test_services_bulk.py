"""Several at once: activating several roles with one justification, ticket and MFA check, and
deciding several requests with one reason and one step-up, each through the single-item
services (their rules, requests and audit events), each on its own or all or nothing."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError

from activations import services
from activations.models import ActivationRequest, Approval
from audit.models import AuditEvent
from tests.factories import UserFactory

from .helpers import HOUR, T0, approve, eligible_for, reloaded, request_actions, request_activation, role_with

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
CLOCK_START = T0
Status = ActivationRequest.Status


def choice(eligible, duration=HOUR):
    return services.ActivationChoice(eligible=eligible, duration=duration)


# --- Activating several roles ----------------------------------------------------------------


def test_three_roles_at_once_each_by_its_own_rules(requester, approver):
    at_once = eligible_for(requester, role_with(name="Ledger Viewer"))
    with_approval = eligible_for(requester, role_with(name="Vault Keeper", approvers=[approver]))
    with_ticket = eligible_for(requester, role_with(name="Payroll Keeper", require_ticket=True))

    outcomes = services.activations_request_many(
        requester=requester,
        choices=[choice(at_once), choice(with_approval), choice(with_ticket)],
        justification="Quarter close",
        mfa_verified_at=T0,
    )

    assert [outcome.ok for outcome in outcomes] == [True, True, False]
    granted, pending = outcomes[0].request, outcomes[1].request
    assert granted.status == Status.GRANTED and pending.status == Status.PENDING_APPROVAL
    assert granted.justification == pending.justification == "Quarter close"
    assert request_actions(granted) == ["activation.granted"]
    assert request_actions(pending) == ["activation.requested"]
    assert outcomes[2].errors == ("A ticket number is required for this role.",)
    assert not ActivationRequest.objects.filter(role=with_ticket.role).exists()


def test_one_ticket_serves_every_role_that_needs_one(requester):
    first = eligible_for(requester, role_with(require_ticket=True))
    second = eligible_for(requester, role_with(require_ticket=True))

    outcomes = services.activations_request_many(
        requester=requester,
        choices=[choice(first), choice(second)],
        justification="Change 7",
        ticket_number="CHG-7",
        ticket_system="ServiceNow",
        mfa_verified_at=T0,
    )

    assert all(outcome.ok for outcome in outcomes)
    assert {outcome.request.ticket_number for outcome in outcomes} == {"CHG-7"}


def test_a_stale_mfa_check_refuses_the_roles_that_need_mfa_only(requester, clock):
    needs_mfa = eligible_for(requester, role_with(name="Vault Keeper"))
    no_mfa = eligible_for(requester, role_with(name="Ledger Viewer", require_mfa=False))

    outcomes = services.activations_request_many(
        requester=requester,
        choices=[choice(needs_mfa), choice(no_mfa)],
        justification="Incident 9",
        mfa_verified_at=T0 - timedelta(hours=1),
    )

    assert outcomes[0].errors == ("Enter a fresh code from your authenticator app to continue.",)
    assert outcomes[1].ok


def test_each_role_keeps_its_own_maximum_duration(requester):
    short = eligible_for(requester, role_with(activation_max_duration=HOUR))
    long = eligible_for(requester, role_with(activation_max_duration=8 * HOUR))

    outcomes = services.activations_request_many(
        requester=requester,
        choices=[choice(short, 2 * HOUR), choice(long, 2 * HOUR)],
        justification="Migration",
        mfa_verified_at=T0,
    )

    assert not outcomes[0].ok and "at most 1 hour" in outcomes[0].errors[0]
    assert outcomes[1].ok


def test_an_already_active_role_is_refused_and_the_others_go_ahead(requester):
    active = eligible_for(requester, role_with(name="Vault Keeper"))
    request_activation(requester, active)
    other = eligible_for(requester, role_with(name="Ledger Viewer"))

    outcomes = services.activations_request_many(
        requester=requester, choices=[choice(active), choice(other)], justification="x", mfa_verified_at=T0
    )

    assert "already active" in outcomes[0].errors[0] and outcomes[1].ok


def test_the_same_role_twice_or_none_at_all_is_refused(requester):
    eligible = eligible_for(requester, role_with())

    with pytest.raises(ValidationError, match="once"):
        services.activations_request_many(requester=requester, choices=[choice(eligible), choice(eligible)])
    with pytest.raises(ValidationError, match="at least one"):
        services.activations_request_many(requester=requester, choices=[])
    assert not ActivationRequest.objects.exists()


def test_someone_elses_eligibility_is_refused_on_its_own(requester, outsider):
    mine = eligible_for(requester, role_with())
    theirs = eligible_for(outsider, role_with())

    outcomes = services.activations_request_many(
        requester=requester, choices=[choice(theirs), choice(mine)], justification="x", mfa_verified_at=T0
    )

    assert outcomes[0].errors == ("You are not eligible for this role (any more).",)
    assert outcomes[1].ok


# --- Deciding several requests ---------------------------------------------------------------


@pytest.fixture
def other_approver(db):
    return UserFactory(username="approver2")


@pytest.fixture
def three_pending(requester, approver, other_approver):
    role = role_with(approvers=[approver, other_approver], name="Vault Keeper")
    people = [requester, UserFactory(username="p2"), UserFactory(username="p3")]
    return [request_activation(person, eligible_for(person, role)) for person in people]


def test_deciding_each_approves_all_with_one_reason_and_their_own_events(approver, three_pending):
    outcomes = services.activations_decide_each(
        approver=approver, requests=three_pending, decision="approve", reason="Planned", mfa_verified_at=T0
    )

    assert all(outcome.ok for outcome in outcomes)
    for request in three_pending:
        assert reloaded(request).status == Status.GRANTED
        assert request_actions(request) == ["activation.requested", "activation.approved"]
        assert Approval.objects.get(request=request).reason == "Planned"


def test_deciding_each_reports_a_request_decided_meanwhile_and_decides_the_others(
    approver, other_approver, three_pending
):
    approve(other_approver, three_pending[1])

    outcomes = services.activations_decide_each(
        approver=approver, requests=three_pending, decision="deny", reason="Freeze", mfa_verified_at=T0
    )

    assert [outcome.ok for outcome in outcomes] == [True, False, True]
    assert "already granted by" in outcomes[1].errors[0]
    assert reloaded(three_pending[0]).status == reloaded(three_pending[2]).status == Status.DENIED
    assert reloaded(three_pending[1]).status == Status.GRANTED


def test_deciding_each_refuses_ones_own_request_and_audits_it(requester, approver, three_pending):
    own = request_activation(approver, eligible_for(approver, role_with(approvers=[requester])))

    outcomes = services.activations_decide_each(
        approver=approver, requests=[three_pending[0], own], decision="approve", mfa_verified_at=T0
    )

    assert outcomes[0].ok and outcomes[1].errors == ("You cannot decide your own request.",)
    assert reloaded(own).status == Status.PENDING_APPROVAL
    assert AuditEvent.objects.filter(action="activation.self_approval_refused", actor=approver).count() == 1


def test_a_denial_needs_one_reason_before_anything_is_decided(approver, three_pending):
    with pytest.raises(ValidationError):
        services.activations_decide_each(
            approver=approver, requests=three_pending, decision="deny", reason=" ", mfa_verified_at=T0
        )
    assert not Approval.objects.exists()


def test_deciding_all_or_nothing_decides_all(approver, three_pending):
    decided = services.activations_decide_all(
        approver=approver, requests=three_pending, decision="approve", reason="ok", mfa_verified_at=T0
    )

    assert [request.pk for request in decided] == [request.pk for request in three_pending]
    assert {reloaded(request).status for request in three_pending} == {Status.GRANTED}


def test_deciding_all_or_nothing_names_every_request_that_changed_and_changes_nothing(
    approver, other_approver, three_pending
):
    services.activation_cancel(actor=three_pending[0].requester, request=three_pending[0])
    approve(other_approver, three_pending[2])
    events_before = AuditEvent.objects.count()

    with pytest.raises(services.DecisionsConflict) as refused:
        services.activations_decide_all(
            approver=approver, requests=three_pending, decision="approve", mfa_verified_at=T0
        )

    assert set(refused.value.changed) == {three_pending[0].pk, three_pending[2].pk}
    assert reloaded(three_pending[1]).status == Status.PENDING_APPROVAL
    assert not Approval.objects.filter(approver=approver).exists()
    assert AuditEvent.objects.count() == events_before


def test_deciding_all_or_nothing_with_a_request_not_mine_to_decide_changes_nothing(
    approver, outsider, three_pending
):
    not_mine = request_activation(outsider, eligible_for(outsider, role_with(approvers=[UserFactory()])))

    with pytest.raises(PermissionDenied):
        services.activations_decide_all(
            approver=approver, requests=[*three_pending, not_mine], decision="approve", mfa_verified_at=T0
        )

    assert not Approval.objects.exists()


def test_deciding_all_or_nothing_needs_a_fresh_step_up(approver, three_pending):
    with pytest.raises(ValidationError) as refused:
        services.activations_decide_all(
            approver=approver, requests=three_pending, decision="approve", mfa_verified_at=None
        )

    assert "otp_token" in refused.value.message_dict
    assert not Approval.objects.exists()
