"""The two-person rule's services (roles.two_person): what waits for a second PIM
Administrator, approval with both names in the audit log, rejection, cancellation, expiry,
and the refusals (the proposer, someone the change gives access to, a stale MFA check, someone
who is not an active PIM Administrator)."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from accounts.tests.helpers import events_after, last_seq
from notifications.models import Email
from roles import services, two_person
from roles.models import ActiveAssignment, EligibleAssignment, PendingChange, Role, RoleSettings
from roles.selectors import PIM_ADMINISTRATOR
from tests.factories import (
    ActiveAssignmentFactory,
    DirectoryGroupFactory,
    EligibleAssignmentFactory,
    RoleFactory,
    UserFactory,
    portal_role,
)

pytestmark = pytest.mark.django_db

Status = PendingChange.Status


@pytest.fixture
def role():
    return RoleFactory(name="Payroll Administrator", privileged=True)


def loosen(actor, role, **changes):
    return services.role_settings_update(actor=actor, role=role, changes=changes or {"require_mfa": False})


def approve(change, approver, **kwargs):
    return two_person.pending_change_approve(
        approver=approver, change=change, mfa_verified_at=timezone.now(), **kwargs
    )


def queued(template: str) -> list[Email]:
    """The emails queued (sent after commit) from the template, oldest first."""
    return list(Email.objects.filter(template=template).order_by("pk"))


def fresh(role) -> RoleSettings:
    return RoleSettings.objects.get(role=role)


# --- Loosening a privileged role's settings waits --------------------------------------------


def test_loosening_a_privileged_roles_settings_waits_and_changes_nothing(admin, second_admin, role):
    seq = last_seq()

    change = loosen(admin, role, require_mfa=False, activation_max_duration=timedelta(hours=12))

    assert isinstance(change, PendingChange)
    assert (change.kind, change.status, change.proposer) == (
        PendingChange.Kind.ROLE_SETTINGS,
        "pending",
        admin,
    )
    assert change.decide_by == change.created_at + timedelta(hours=24)
    assert change.payload == {"changes": {"activation_max_duration": 12 * 3600, "require_mfa": False}}
    assert (fresh(role).require_mfa, fresh(role).activation_max_duration) == (True, timedelta(hours=8))
    [event] = events_after(seq)
    assert (event.action, event.actor_id, event.target_id) == (
        "pending_change.proposed",
        admin.pk,
        str(change.pk),
    )
    assert sorted(event.details["loosens"]) == ["activation_max_duration", "require_mfa"]
    assert event.details["changes"]["require_mfa"] == {"before": "Yes", "after": "No"}


def test_every_other_pim_administrator_is_emailed_a_link_to_the_approval_page(admin, second_admin, role):
    eligible_admin = UserFactory(username="third", display_name="Cy Eligible-Admin")
    EligibleAssignmentFactory(user=eligible_admin, role=portal_role(PIM_ADMINISTRATOR), ends_at=None)

    change = loosen(admin, role)

    emails = queued("pending-change-request")
    assert sorted(email.to for email in emails) == sorted([second_admin.email, eligible_admin.email])
    email = emails[0]
    assert "Second approval needed" in email.subject and role.name in email.subject
    assert f"http://127.0.0.1:8000/roles/changes/{change.pk}/" in email.body_text
    assert f'href="http://127.0.0.1:8000/roles/changes/{change.pk}/"' in email.body_html
    assert "Require MFA on activation: Yes -> No (looser)" in email.body_text


def test_tightening_applies_at_once(admin, second_admin, role):
    seq = last_seq()

    result = services.role_settings_update(
        actor=admin,
        role=role,
        changes={"activation_max_duration": timedelta(hours=2), "require_ticket": True},
    )

    assert isinstance(result, RoleSettings)
    assert fresh(role).activation_max_duration == timedelta(hours=2) and fresh(role).require_ticket
    assert [e.action for e in events_after(seq)] == ["role_settings.changed"]
    assert not PendingChange.objects.exists()


def test_a_change_that_loosens_anything_waits_as_a_whole(admin, second_admin, role):
    change = loosen(admin, role, require_ticket=True, eligible_max_duration=timedelta(days=400))

    assert isinstance(change, PendingChange)
    assert fresh(role).require_ticket is False  # the tightening half waits too


@pytest.mark.parametrize(
    ("current", "proposed", "loosened"),
    [
        ({}, {"activation_max_duration": timedelta(hours=9)}, ["activation_max_duration"]),
        ({}, {"eligible_max_duration": timedelta(days=366)}, ["eligible_max_duration"]),
        ({}, {"active_max_duration": timedelta(days=181)}, ["active_max_duration"]),
        ({}, {"require_mfa": False}, ["require_mfa"]),
        ({}, {"require_justification": False}, ["require_justification"]),
        ({"require_ticket": True}, {"require_ticket": False}, ["require_ticket"]),
        ({"require_approval": True}, {"require_approval": False}, ["require_approval"]),
        ({"active_require_mfa": True}, {"active_require_mfa": False}, ["active_require_mfa"]),
        ({}, {"active_require_justification": False}, ["active_require_justification"]),
        ({}, {"eligible_allow_permanent": True}, ["eligible_allow_permanent"]),
        ({}, {"active_allow_permanent": True}, ["active_allow_permanent"]),
        (
            {"require_approval": True, "approvals_required": 2},
            {"approvals_required": 1},
            ["approvals_required"],
        ),
        ({"require_approval": True}, {"approval_timeout": timedelta(hours=48)}, ["approval_timeout"]),
        (
            {"notify_activation_admin_additional": "a@x.org\nb@x.org"},
            {"notify_activation_admin_additional": "a@x.org"},
            ["notify_activation_admin_additional"],
        ),
        ({}, {"notify_eligible_assignee_default": False}, ["notify_eligible_assignee_default"]),
        (
            {},
            {"notify_activation_approver_critical_only": True},
            ["notify_activation_approver_critical_only"],
        ),
        # Tightening, or no effect while approval is not required:
        ({}, {"activation_max_duration": timedelta(hours=1)}, []),
        ({}, {"require_approval": True, "approvals_required": 1}, []),
        ({"approvals_required": 3}, {"approvals_required": 1}, []),
        ({}, {"notify_active_admin_additional": "c@x.org"}, []),
        ({"notify_active_admin_critical_only": True}, {"notify_active_admin_critical_only": False}, []),
        ({"require_approval": True, "approvals_required": 1}, {"approvals_required": 2}, []),
    ],
)
def test_what_counts_as_loosening(role, current, proposed, loosened):
    RoleSettings.objects.filter(role=role).update(**current)
    stored = fresh(role)
    changed = fresh(role)
    for field, value in proposed.items():
        setattr(changed, field, value)
    assert two_person.settings_loosened(stored, changed) == loosened


def test_adding_someone_who_could_approve_is_loosening_removing_is_not(admin, second_admin, role):
    first, second = UserFactory(), UserFactory()
    services.role_settings_update(
        actor=None, role=role, changes={"require_approval": True}, approvers=[first]
    )

    added = services.role_settings_update(actor=admin, role=role, changes={}, approvers=[first, second])
    assert isinstance(added, PendingChange) and added.payload["approvers"] == sorted([first.pk, second.pk])
    two_person.pending_change_cancel(actor=admin, change=added)

    services.role_settings_update(actor=None, role=role, changes={}, approvers=[first, second])
    removed = services.role_settings_update(actor=admin, role=role, changes={}, approvers=[first])
    assert isinstance(removed, RoleSettings)
    assert list(fresh(role).approvers.all()) == [first]


def test_every_role_setting_is_classified():
    assert set(two_person.POLICY_FIELDS) == set(services.SETTINGS_FIELDS) == set(two_person.LABELS)


def test_a_role_not_marked_privileged_is_changed_at_once(admin, second_admin):
    role = RoleFactory(privileged=False)
    assert isinstance(loosen(admin, role), RoleSettings)
    assert fresh(role).require_mfa is False


def test_the_system_never_waits(role):
    assert isinstance(loosen(None, role), RoleSettings)


def test_with_the_rule_off_loosening_applies_at_once(admin, second_admin, role, settings):
    settings.PIM_TWO_PERSON_RULE = False
    assert isinstance(loosen(admin, role), RoleSettings)
    assert fresh(role).require_mfa is False


def test_nobody_else_to_approve_refuses_the_change(admin, role):
    with pytest.raises(ValidationError, match="no other PIM Administrator"):
        loosen(admin, role)
    assert fresh(role).require_mfa is True
    assert not PendingChange.objects.exists()


def test_one_pending_loosening_per_role(admin, second_admin, role):
    loosen(admin, role, require_mfa=False)
    with pytest.raises(ValidationError, match="already waits"):
        loosen(second_admin, role, require_justification=False)
    assert PendingChange.objects.count() == 1


def test_un_marking_a_privileged_role_waits(admin, second_admin, role):
    change = services.role_update(actor=admin, role=role, changes={"privileged": False, "tier": "standard"})

    assert isinstance(change, PendingChange) and change.kind == PendingChange.Kind.ROLE
    role.refresh_from_db()
    assert role.privileged is True and role.tier == "high"
    approve(change, second_admin)
    role.refresh_from_db()
    assert role.privileged is False and role.tier == "standard"


# --- Approving -----------------------------------------------------------------------------


def test_a_second_administrator_approves_and_the_change_applies_with_both_names(admin, second_admin, role):
    change = loosen(admin, role, require_mfa=False, activation_max_duration=timedelta(hours=12))
    seq = last_seq()

    approved = approve(change, second_admin, reason="Night shift cover")

    assert (approved.status, approved.decided_by, approved.reason) == (
        "approved",
        second_admin,
        "Night shift cover",
    )
    assert fresh(role).require_mfa is False and fresh(role).activation_max_duration == timedelta(hours=12)
    changed, decided = events_after(seq)
    assert (changed.action, changed.actor_id) == ("role_settings.changed", second_admin.pk)
    assert changed.details["changes"]["require_mfa"] == {"before": True, "after": False}
    assert changed.details["two_person"] == {
        "pending_change": str(change.pk),
        "proposed_by": admin.label,
        "approved_by": second_admin.label,
    }
    assert (decided.action, decided.actor_id) == ("pending_change.approved", second_admin.pk)
    assert (decided.details["proposed_by"], decided.details["approved_by"]) == (
        admin.label,
        second_admin.label,
    )
    [told] = queued("pending-change-decided")
    assert told.to == admin.email and told.subject.startswith("Approved")


def test_the_proposer_can_never_approve_their_own_change(admin, second_admin, role):
    change = loosen(admin, role)
    seq = last_seq()

    with pytest.raises(PermissionDenied, match="You proposed this change"):
        approve(change, admin)

    change.refresh_from_db()
    assert change.status == Status.PENDING and fresh(role).require_mfa is True
    [refused] = events_after(seq)
    assert (refused.action, refused.actor_id, refused.outcome) == (
        "pending_change.self_approval_refused",
        admin.pk,
        "denied",
    )
    assert refused.details["why"] == "proposer"


def test_the_proposer_is_refused_even_with_a_stale_code_and_after_the_deadline(
    admin, second_admin, role, time_machine
):
    change = loosen(admin, role)
    time_machine.move_to(change.decide_by + timedelta(hours=1), tick=False)
    with pytest.raises(PermissionDenied, match="You proposed this change"):
        two_person.pending_change_approve(approver=admin, change=change, mfa_verified_at=None)
    assert events_after(0, action="pending_change.self_approval_refused")


def test_approving_needs_a_fresh_mfa_check(admin, second_admin, role):
    change = loosen(admin, role)
    stale = timezone.now() - timedelta(minutes=10)
    for verified_at in (None, stale):
        with pytest.raises(PermissionDenied, match="fresh MFA"):
            two_person.pending_change_approve(
                approver=second_admin, change=change, mfa_verified_at=verified_at
            )
    change.refresh_from_db()
    assert change.status == Status.PENDING


def test_only_a_pim_administrator_with_the_role_active_can_decide(
    admin, second_admin, role, outsider, auditor
):
    change = loosen(admin, role)
    merely_eligible = UserFactory()
    EligibleAssignmentFactory(user=merely_eligible, role=portal_role(PIM_ADMINISTRATOR), ends_at=None)
    for person in (outsider, auditor, merely_eligible):
        with pytest.raises(PermissionDenied, match="role active"):
            approve(change, person)
        with pytest.raises(PermissionDenied, match="role active"):
            two_person.pending_change_reject(
                approver=person, change=change, reason="No", mfa_verified_at=timezone.now()
            )
    change.refresh_from_db()
    assert change.status == Status.PENDING


def test_a_second_decision_is_told_who_decided(admin, second_admin, role):
    third = UserFactory(display_name="Cy Third")
    ActiveAssignmentFactory(user=third, role=portal_role(PIM_ADMINISTRATOR))
    change = loosen(admin, role)
    approve(change, second_admin)

    with pytest.raises(ValidationError, match=f"already approved by {second_admin}"):
        approve(change, third)


def test_an_approval_that_the_live_policy_refuses_changes_nothing(admin, second_admin, role):
    """Applied with the settings as they are at approval (re-validated by the same service)."""
    approver = UserFactory()
    services.role_settings_update(
        actor=None, role=role, changes={"require_approval": True}, approvers=[approver]
    )
    change = services.role_settings_update(
        actor=admin, role=role, changes={}, approvers=[approver, UserFactory()]
    )
    approver.is_active = False
    approver.save()
    services.role_settings_update(actor=None, role=role, changes={"approvals_required": 2}, approvers=None)
    # Now only one of the two proposed approvers is active, and 2 approvals are required.
    with pytest.raises(ValidationError, match="could approve"):
        approve(change, second_admin)
    change.refresh_from_db()
    assert change.status == Status.PENDING


# --- Rejecting, cancelling, expiring -------------------------------------------------------


def test_a_second_administrator_rejects_with_a_reason(admin, second_admin, role):
    change = loosen(admin, role)
    with pytest.raises(ValidationError):
        two_person.pending_change_reject(
            approver=second_admin, change=change, reason="", mfa_verified_at=timezone.now()
        )
    seq = last_seq()

    two_person.pending_change_reject(
        approver=second_admin, change=change, reason="Not during the audit", mfa_verified_at=timezone.now()
    )

    change.refresh_from_db()
    assert (change.status, change.decided_by, change.reason) == (
        "rejected",
        second_admin,
        "Not during the audit",
    )
    assert fresh(role).require_mfa is True
    [event] = events_after(seq)
    assert (event.action, event.details["proposed_by"], event.details["rejected_by"]) == (
        "pending_change.rejected",
        admin.label,
        second_admin.label,
    )
    [told] = queued("pending-change-decided")
    assert told.to == admin.email and "Not during the audit" in told.body_text


def test_the_proposer_cancels_and_nobody_else_can(admin, second_admin, role):
    change = loosen(admin, role)
    with pytest.raises(PermissionDenied):
        two_person.pending_change_cancel(actor=second_admin, change=change)
    with pytest.raises(PermissionDenied, match="cancel it instead"):
        two_person.pending_change_reject(
            approver=admin, change=change, reason="x", mfa_verified_at=timezone.now()
        )
    seq = last_seq()

    two_person.pending_change_cancel(actor=admin, change=change)

    change.refresh_from_db()
    assert change.status == Status.CANCELED
    assert [e.action for e in events_after(seq)] == ["pending_change.canceled"]
    with pytest.raises(ValidationError, match="already canceled"):
        approve(change, second_admin)


def test_a_change_nobody_decides_expires_at_its_deadline(admin, second_admin, role, time_machine):
    change = loosen(admin, role)
    ActiveAssignmentFactory(  # still an active PIM Administrator at the deadline
        user=second_admin, role=portal_role(PIM_ADMINISTRATOR), ends_at=change.decide_by + timedelta(hours=1)
    )
    assert two_person.pending_change_expire_due(now=change.decide_by - timedelta(seconds=1)) == 0
    time_machine.move_to(change.decide_by, tick=False)
    with pytest.raises(ValidationError, match="expired"):
        approve(change, second_admin)
    seq = last_seq()

    assert two_person.pending_change_expire_due() == 1
    assert two_person.pending_change_expire_due() == 0  # once

    change.refresh_from_db()
    assert (change.status, change.decided_at) == ("expired", change.decide_by)
    [event] = events_after(seq)
    assert (event.action, event.actor_id, event.details["proposed_by"]) == (
        "pending_change.expired",
        None,
        admin.label,
    )
    [told] = queued("pending-change-decided")
    assert told.to == admin.email and told.subject.startswith("Expired")
    assert fresh(role).require_mfa is True


def test_the_expiry_task_returns_its_count(admin, second_admin, role, time_machine):
    from roles.tasks import pending_change_expire_due

    change = loosen(admin, role)
    time_machine.move_to(change.decide_by + timedelta(minutes=1), tick=False)
    assert pending_change_expire_due() == 1


# --- Assignments for oneself --------------------------------------------------------------


def test_an_eligibility_for_oneself_waits_and_for_someone_else_applies_at_once(
    admin, second_admin, role, requester
):
    ends_at = timezone.now() + timedelta(days=30)
    seq = last_seq()

    change = services.eligible_assign(
        actor=admin, role=role, principal=admin, ends_at=ends_at, justification="On call"
    )

    assert isinstance(change, PendingChange) and change.kind == PendingChange.Kind.SELF_ELIGIBLE
    assert not EligibleAssignment.objects.filter(user=admin, role=role).exists()
    assert [e.action for e in events_after(seq)] == ["pending_change.proposed"]
    other = services.eligible_assign(actor=admin, role=role, principal=requester, ends_at=ends_at)
    assert isinstance(other, EligibleAssignment)

    seq = last_seq()
    approve(change, second_admin)

    assignment = EligibleAssignment.objects.get(user=admin, role=role)
    assert (assignment.ends_at, assignment.justification, assignment.created_by) == (
        ends_at,
        "On call",
        second_admin,
    )
    created, approved = events_after(seq)
    assert created.action == "eligible_assignment.created"
    assert created.details["two_person"]["proposed_by"] == admin.label
    assert created.details["two_person"]["approved_by"] == second_admin.label
    assert approved.action == "pending_change.approved"


def test_a_direct_active_assignment_to_oneself_waits_and_starts_when_approved(
    admin, second_admin, role, time_machine
):
    start = timezone.now()
    change = services.active_assign(
        actor=admin,
        role=role,
        principal=admin,
        starts_at=start,
        ends_at=start + timedelta(days=2),
        justification="x",
    )
    assert isinstance(change, PendingChange) and change.kind == PendingChange.Kind.SELF_ACTIVE
    assert not ActiveAssignment.objects.filter(user=admin, role=role).exists()

    time_machine.move_to(start + timedelta(hours=3), tick=False)
    approve(change, second_admin)

    assignment = ActiveAssignment.objects.get(user=admin, role=role)
    assert assignment.starts_at == timezone.now()  # not in the past
    assert assignment.origin == ActiveAssignment.Origin.DIRECT


def test_an_assignment_to_a_group_one_is_in_waits_and_its_members_cannot_approve(admin, second_admin, role):
    group = DirectoryGroupFactory(name="Payroll admins")
    group.members.add(admin, second_admin)
    third = UserFactory(display_name="Cy Third")
    ActiveAssignmentFactory(user=third, role=portal_role(PIM_ADMINISTRATOR))

    change = services.eligible_assign(
        actor=admin, role=role, principal=group, ends_at=timezone.now() + timedelta(days=9)
    )

    assert isinstance(change, PendingChange)
    # Not the members it would give access to:
    assert [email.to for email in queued("pending-change-request")] == [third.email]
    with pytest.raises(PermissionDenied, match="give you access"):
        approve(change, second_admin)
    assert events_after(0, action="pending_change.self_approval_refused")[0].details["why"] != "proposer"
    approve(change, third)
    assert EligibleAssignment.objects.filter(group=group, role=role).exists()


def test_an_assignment_for_oneself_that_the_policy_refuses_is_refused_at_once(admin, second_admin, role):
    seq = last_seq()
    with pytest.raises(ValidationError, match="Permanent eligible assignments"):
        services.eligible_assign(actor=admin, role=role, principal=admin, ends_at=None)
    assert not PendingChange.objects.exists()
    assert events_after(seq) == []
    assert not EligibleAssignment.objects.exists()


def test_with_the_rule_off_an_assignment_for_oneself_applies_at_once(admin, role, settings):
    settings.PIM_TWO_PERSON_RULE = False
    assignment = services.eligible_assign(
        actor=admin, role=role, principal=admin, ends_at=timezone.now() + timedelta(days=9)
    )
    assert isinstance(assignment, EligibleAssignment)


def test_the_rule_does_not_touch_activations_or_the_system(role, requester):
    assignment = services.active_assign(
        actor=None,
        role=role,
        principal=requester,
        ends_at=timezone.now() + timedelta(days=1),
        justification="x",
    )
    assert isinstance(assignment, ActiveAssignment)
    assert Role.objects.filter(pk=role.pk).exists()


def test_a_later_end_for_ones_own_eligibility_waits_and_an_earlier_one_applies_at_once(
    admin, second_admin, role
):
    now = timezone.now()
    assignment = EligibleAssignmentFactory(user=admin, role=role, ends_at=now + timedelta(days=10))

    change = services.eligible_update(actor=admin, assignment=assignment, ends_at=now + timedelta(days=60))

    assert isinstance(change, PendingChange) and change.kind == PendingChange.Kind.SELF_ELIGIBLE
    assignment.refresh_from_db()
    assert assignment.ends_at == now + timedelta(days=10)
    rows = {row["field"]: row for row in two_person.pending_change_rows(change)}
    assert rows["ends_at"]["loosens"] and rows["ends_at"]["proposed"].startswith(
        f"{now + timedelta(days=60):%Y-%m-%d}"
    )
    seq = last_seq()
    approve(change, second_admin)
    assignment.refresh_from_db()
    assert assignment.ends_at == now + timedelta(days=60)
    updated = events_after(seq, action="eligible_assignment.updated")[0]
    assert updated.details["two_person"]["approved_by"] == second_admin.label

    shorter = services.eligible_update(actor=admin, assignment=assignment, ends_at=now + timedelta(days=5))
    assert isinstance(shorter, EligibleAssignment) and shorter.ends_at == now + timedelta(days=5)


def test_making_ones_own_active_assignment_permanent_waits(admin, second_admin, role):
    services.role_settings_update(actor=None, role=role, changes={"active_allow_permanent": True})
    assignment = ActiveAssignmentFactory(user=admin, role=role)
    change = services.active_update(actor=admin, assignment=assignment, ends_at=None)
    assert isinstance(change, PendingChange) and change.kind == PendingChange.Kind.SELF_ACTIVE
    assignment.refresh_from_db()
    assert assignment.ends_at is not None
    approve(change, second_admin)
    assignment.refresh_from_db()
    assert assignment.ends_at is None


def test_request_email_text_is_escaped_in_html_and_plain_in_text(admin, second_admin, role):
    admin.display_name = "<b>Ada</b>"
    admin.save()
    services.eligible_assign(
        actor=admin,
        role=role,
        principal=admin,
        ends_at=timezone.now() + timedelta(days=9),
        justification="<script>alert(1)</script>",
    )
    [email] = queued("pending-change-request")
    assert "<script>" not in email.body_html and "&lt;script&gt;" in email.body_html
    assert "<b>Ada</b>" not in email.body_html
    # The text part is plain text: shown as written, never parsed as HTML.
    assert "<script>alert(1)</script>" in email.body_text and "&lt;" not in email.body_text
    assert "<b>Ada</b>" in email.subject  # a plain-text header, not HTML
