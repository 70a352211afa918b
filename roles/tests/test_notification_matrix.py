"""Entra's notification matrix, rule by rule, over real SMTP on loopback: who is emailed for
each event (eligible assignment, active assignment, activation) and audience (administrators,
the assignee or requester, approvers), with the defaults, additional recipients and "critical
emails only"; expiry notices to admins and group members; at most N recipients per event."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from activations import jobs
from activations.services import active_extension_request, extension_request
from activations.tests.helpers import T0, approve, eligible_for, request_activation, role_with
from roles import notification_matrix, services
from roles.models import RoleSettings
from roles.selectors import portal_role
from tests.factories import DirectoryGroupFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
CLOCK_START = T0
SOC = "soc@example.test"


@pytest.fixture
def role():
    return role_with(name="Matrix Test Role")


def set_rule(role, event, audience, *, default=True, additional="", critical_only=False):
    rule = notification_matrix.rule_for(event, audience)
    RoleSettings.objects.filter(role=role).update(
        **{rule.default_field: default, rule.additional_field: additional, rule.critical_field: critical_only}
    )


def run(django_capture_on_commit_callbacks, action):
    with django_capture_on_commit_callbacks(execute=True):
        return action()


def assign(kind, admin, role, principal, django_capture_on_commit_callbacks):
    service = services.eligible_assign if kind == "eligible" else services.active_assign
    extra = {"mfa_verified_at": timezone.now()} if kind == "active" else {}
    return run(
        django_capture_on_commit_callbacks,
        lambda: service(
            actor=admin,
            role=role,
            principal=principal,
            ends_at=timezone.now() + timedelta(days=30),
            justification="Cover for the audit",
            **extra,
        ),
    )


# --- Rules 9, 10, 12, 13: members assigned as eligible / active --------------------------------


@pytest.mark.parametrize("kind", ["eligible", "active"])
def test_by_default_the_assignee_and_the_pim_administrators_are_emailed(
    kind, admin, requester, role, smtp_mailbox, django_capture_on_commit_callbacks
):
    assign(kind, admin, role, requester, django_capture_on_commit_callbacks)

    assert smtp_mailbox.to(requester.email) == [f"You are now {kind} for Matrix Test Role"]
    assert smtp_mailbox.to(admin.email) == [
        f"Role assignment alert: {requester.label} is {kind} for Matrix Test Role"
    ]
    assert smtp_mailbox.addresses() == {requester.email, admin.email}


@pytest.mark.parametrize("kind", ["eligible", "active"])
def test_admin_alert_default_off_with_additional_recipients_goes_to_those_only(
    kind, admin, requester, role, smtp_mailbox, django_capture_on_commit_callbacks
):
    set_rule(role, kind, "admin", default=False, additional=f"{SOC}\nciso@example.test")
    assign(kind, admin, role, requester, django_capture_on_commit_callbacks)

    assert smtp_mailbox.addresses("Role assignment alert") == {SOC, "ciso@example.test"}
    assert smtp_mailbox.to(admin.email) == []


@pytest.mark.parametrize("kind", ["eligible", "active"])
def test_assignee_notice_off_and_admin_alert_to_defaults_and_additional(
    kind, admin, requester, role, smtp_mailbox, django_capture_on_commit_callbacks
):
    set_rule(role, kind, "assignee", default=False)
    set_rule(role, kind, "admin", additional=SOC)
    assign(kind, admin, role, requester, django_capture_on_commit_callbacks)

    assert smtp_mailbox.to(requester.email) == []
    assert smtp_mailbox.addresses("Role assignment alert") == {admin.email, SOC}


@pytest.mark.parametrize("kind", ["eligible", "active"])
@pytest.mark.parametrize("audience", ["admin", "assignee"])
def test_critical_only_suppresses_assignment_notices(
    kind, audience, admin, requester, role, smtp_mailbox, django_capture_on_commit_callbacks
):
    set_rule(role, kind, audience, additional=SOC, critical_only=True)
    assign(kind, admin, role, requester, django_capture_on_commit_callbacks)

    told = {"admin": admin.email, "assignee": requester.email}
    assert smtp_mailbox.to(told[audience]) == [] and smtp_mailbox.to(SOC) == []
    other = told["assignee" if audience == "admin" else "admin"]
    assert len(smtp_mailbox.to(other)) == 1


def test_a_group_assignment_emails_every_active_member(
    admin, role, smtp_mailbox, django_capture_on_commit_callbacks
):
    members = [UserFactory(username=f"member{n}") for n in range(3)]
    gone = UserFactory(username="gone", is_active=False)
    group = DirectoryGroupFactory(name="Payroll team")
    group.members.set([*members, gone])
    assign("eligible", admin, role, group, django_capture_on_commit_callbacks)

    subject = "Your group Payroll team is now eligible for Matrix Test Role"
    assert smtp_mailbox.addresses(subject) == {member.email for member in members}


def test_an_imported_eligibility_sends_nothing(
    admin, requester, role, smtp_mailbox, django_capture_on_commit_callbacks
):
    run(
        django_capture_on_commit_callbacks,
        lambda: services.eligible_assign(
            actor=None, role=role, principal=requester, ends_at=T0 + timedelta(days=30), notify=False
        ),
    )
    assert smtp_mailbox.messages == []


# --- Rules 15, 16, 17: eligible members activate -------------------------------------------------


def test_an_activation_emails_the_requester_and_alerts_the_administrators(
    admin, requester, role, smtp_mailbox, django_capture_on_commit_callbacks
):
    eligible = eligible_for(requester, role)
    run(django_capture_on_commit_callbacks, lambda: request_activation(requester, eligible))

    assert smtp_mailbox.to(requester.email) == ["Matrix Test Role is active until 11:00 UTC"]
    assert smtp_mailbox.to(admin.email) == [f"Role activation alert: {requester} activated Matrix Test Role"]


def test_activation_alert_additional_recipients_and_requester_notice_off(
    admin, requester, role, smtp_mailbox, django_capture_on_commit_callbacks
):
    set_rule(role, "activation", "admin", default=False, additional=SOC)
    set_rule(role, "activation", "assignee", default=False)
    eligible = eligible_for(requester, role)
    run(django_capture_on_commit_callbacks, lambda: request_activation(requester, eligible))

    assert smtp_mailbox.addresses() == {SOC}
    assert smtp_mailbox.to(SOC) == [f"Role activation alert: {requester} activated Matrix Test Role"]


def test_activation_critical_only_sends_no_alert_or_notice(
    admin, requester, role, smtp_mailbox, django_capture_on_commit_callbacks
):
    set_rule(role, "activation", "admin", additional=SOC, critical_only=True)
    set_rule(role, "activation", "assignee", critical_only=True)
    eligible = eligible_for(requester, role)
    run(django_capture_on_commit_callbacks, lambda: request_activation(requester, eligible))
    assert smtp_mailbox.messages == []


def test_approvers_get_the_request_and_admins_the_alert_once_it_is_approved(
    admin, requester, approver, smtp_mailbox, django_capture_on_commit_callbacks
):
    role = role_with(approvers=[approver], name="Matrix Approval Role")
    set_rule(role, "activation", "approver", additional=SOC)
    request = run(
        django_capture_on_commit_callbacks,
        lambda: request_activation(requester, eligible_for(requester, role)),
    )
    assert smtp_mailbox.addresses("Approval needed") == {approver.email, SOC}
    assert smtp_mailbox.to(approver.email) == [
        f"Approval needed: Activation of Matrix Approval Role for {requester}"
    ]
    assert smtp_mailbox.to(admin.email) == []  # nothing is active yet

    run(django_capture_on_commit_callbacks, lambda: approve(approver, request))
    assert smtp_mailbox.to(admin.email) == [
        f"Role activation alert: {requester} activated Matrix Approval Role"
    ]


def test_approval_requests_are_critical_and_go_out_even_when_critical_only(
    requester, approver, smtp_mailbox, django_capture_on_commit_callbacks
):
    role = role_with(approvers=[approver], name="Matrix Approval Role")
    set_rule(role, "activation", "approver", default=False, additional=SOC, critical_only=True)
    run(
        django_capture_on_commit_callbacks,
        lambda: request_activation(requester, eligible_for(requester, role)),
    )

    assert smtp_mailbox.to(approver.email) == []  # default recipients off
    assert len(smtp_mailbox.to(SOC)) == 1


# --- Rule 11: request to approve an extension of an eligibility ------------------------------------


def test_an_extension_request_goes_to_approvers_by_the_eligible_approver_rule(
    requester, approver, smtp_mailbox, django_capture_on_commit_callbacks
):
    role = role_with(approvers=[approver], name="Matrix Approval Role")
    set_rule(role, "eligible", "approver", additional=SOC)
    set_rule(role, "activation", "approver", default=False)  # not the activation rule
    eligible = eligible_for(requester, role, ends_at=T0 + timedelta(days=5))
    run(
        django_capture_on_commit_callbacks,
        lambda: extension_request(
            requester=requester,
            eligible=eligible,
            duration=timedelta(days=30),
            justification="Still on payroll",
        ),
    )
    assert smtp_mailbox.addresses() == {approver.email, SOC}


def test_extension_requests_are_not_sent_when_the_eligible_approver_rule_is_off(
    requester, approver, smtp_mailbox, django_capture_on_commit_callbacks
):
    role = role_with(approvers=[approver], name="Matrix Approval Role")
    set_rule(role, "eligible", "approver", default=False)
    eligible = eligible_for(requester, role, ends_at=T0 + timedelta(days=5))
    run(
        django_capture_on_commit_callbacks,
        lambda: extension_request(
            requester=requester,
            eligible=eligible,
            duration=timedelta(days=30),
            justification="Still on payroll",
        ),
    )
    assert smtp_mailbox.messages == []


def test_an_active_assignment_extension_request_goes_by_the_active_approver_rule(
    admin, requester, approver, smtp_mailbox, django_capture_on_commit_callbacks
):
    """Rule 14: "request to approve an extension of an active assignment"."""
    role = role_with(approvers=[approver], name="Matrix Active Role")
    set_rule(role, "active", "approver", additional=SOC)
    set_rule(role, "eligible", "approver", default=False)  # not the eligible rule
    assignment = services.active_assign(
        actor=admin,
        role=role,
        principal=requester,
        ends_at=T0 + timedelta(days=5),
        justification="On call",
        mfa_verified_at=timezone.now(),
    )
    smtp_mailbox.received.clear()
    run(
        django_capture_on_commit_callbacks,
        lambda: active_extension_request(
            requester=requester,
            assignment=assignment,
            duration=timedelta(days=7),
            justification="Still on call",
        ),
    )
    assert smtp_mailbox.addresses() == {approver.email, SOC}


# --- Expiry notices ---------------------------------------------------------------------------------


def test_expiry_notices_go_to_group_members_and_administrators_at_14_days_1_day_and_the_end(
    admin, role, smtp_mailbox, clock, django_capture_on_commit_callbacks
):
    # A PIM Administrator all along (eligible, permanently): the default admin recipient.
    eligible_for(admin, portal_role("pim.administrator"), ends_at=None)
    member = UserFactory(username="member")
    group = DirectoryGroupFactory(name="Night shift")
    group.members.set([member])
    eligible_for(group, role, starts_at=T0 - timedelta(days=10), ends_at=T0 + timedelta(days=20))

    for days_later, admin_subject in [
        (7, "The eligible assignment of Matrix Test Role for group Night shift ends in 14 days"),
        (19, "The eligible assignment of Matrix Test Role for group Night shift ends in 1 day"),
        (20, "The eligible assignment of Matrix Test Role for group Night shift has ended"),
    ]:
        clock.move_to(T0 + timedelta(days=days_later, minutes=1), tick=False)
        run(django_capture_on_commit_callbacks, jobs.assignment_expiry_notices)
        assert smtp_mailbox.to(admin.email)[-1] == admin_subject
    assert smtp_mailbox.to(member.email) == [
        "The eligible assignment of your group Night shift to Matrix Test Role ends in 14 days",
        "The eligible assignment of your group Night shift to Matrix Test Role ends in 1 day",
        "The eligible assignment of your group Night shift to Matrix Test Role has ended",
    ]
    run(django_capture_on_commit_callbacks, jobs.assignment_expiry_notices)  # nothing twice
    assert len(smtp_mailbox.messages) == 6


def test_expiry_notices_are_not_critical(
    admin, requester, role, smtp_mailbox, clock, django_capture_on_commit_callbacks
):
    set_rule(role, "eligible", "assignee", critical_only=True)
    set_rule(role, "eligible", "admin", default=False)
    eligible_for(requester, role, ends_at=T0 + timedelta(days=10))
    run(django_capture_on_commit_callbacks, jobs.assignment_expiry_notices)
    assert smtp_mailbox.messages == []


# --- The cap, and bad input -----------------------------------------------------------------------------


def test_one_event_emails_at_most_the_configured_number_of_recipients(
    admin, role, settings, smtp_mailbox, django_capture_on_commit_callbacks
):
    settings.PIM_NOTIFICATION_MAX_RECIPIENTS = 4
    group = DirectoryGroupFactory(name="Big team")
    group.members.set([UserFactory(username=f"big{n}") for n in range(6)])
    set_rule(role, "eligible", "admin", additional=SOC)
    assign("eligible", admin, role, group, django_capture_on_commit_callbacks)

    assert len(smtp_mailbox.addresses()) == 4
    assert admin.email not in smtp_mailbox.addresses()  # past the cap: no email


def test_the_default_cap_is_entras_thousand(settings):
    from pim_portal import settings as project_settings

    assert project_settings.PIM_NOTIFICATION_MAX_RECIPIENTS == 1000


def test_the_defaults_are_entras_every_rule_on_no_extra_all_emails(role):
    role_settings = RoleSettings.objects.get(role=role)
    for rule in notification_matrix.RULES:
        assert getattr(role_settings, rule.default_field) is True
        assert getattr(role_settings, rule.additional_field) == ""
        assert getattr(role_settings, rule.critical_field) is False
    assert len(notification_matrix.RULES) == 9
    assert {rule.entra_id for rule in notification_matrix.RULES} == {
        f"Notification_{who}_{level}"
        for who in ("Admin", "Requestor", "Approver")
        for level in ("Admin_Eligibility", "Admin_Assignment", "EndUser_Assignment")
    }


def test_additional_recipients_are_validated_by_the_role_settings_service(admin, role):
    with pytest.raises(ValidationError) as caught:
        services.role_settings_update(
            actor=admin,
            role=role,
            changes={"notify_activation_admin_additional": "soc@example.test\nnot-an-address"},
        )
    assert "not-an-address" in caught.value.message_dict["notify_activation_admin_additional"][0]
    assert RoleSettings.objects.get(role=role).notify_activation_admin_additional == ""


def test_additional_recipients_are_stored_one_per_line(admin, role):
    services.role_settings_update(
        actor=admin,
        role=role,
        changes={"notify_active_admin_additional": " SOC@example.test; b@example.test,"},
    )
    assert (
        RoleSettings.objects.get(role=role).notify_active_admin_additional
        == "soc@example.test\nb@example.test"
    )
