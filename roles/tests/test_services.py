from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from audit.models import AuditEvent
from roles import services
from roles.models import ActiveAssignment, EligibleAssignment, Role
from roles.selectors import user_holds_role
from tests.factories import (
    ActiveAssignmentFactory,
    DirectoryGroupFactory,
    EligibleAssignmentFactory,
    RoleFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


def events(action=None):
    qs = AuditEvent.objects.all()
    return list(qs.filter(action=action) if action else qs)


@pytest.fixture
def role():
    return RoleFactory(name="Payroll Administrator")


def test_admin_assigns_an_eligibility_and_exactly_one_event_is_written(admin, requester, role):
    before = AuditEvent.objects.count()
    ends = timezone.now() + timedelta(days=30)
    assignment = services.eligible_assign(
        actor=admin, role=role, principal=requester, ends_at=ends, justification="Payroll cover"
    )
    assert assignment.user == requester and assignment.ends_at == ends
    assert AuditEvent.objects.count() == before + 1
    event = AuditEvent.objects.last()
    assert event.action == "eligible_assignment.created"
    assert event.actor == admin
    assert event.role_label == "Payroll Administrator"
    assert event.target_id == str(assignment.pk)
    assert event.details["justification"] == "Payroll cover"


@pytest.mark.parametrize(
    ("ends_in", "message"),
    [
        (timedelta(days=366), "at most 365 days"),
        (timedelta(minutes=4), "at least 5 minutes"),
        (timedelta(minutes=-10), "after the start"),
        (None, "Permanent eligible assignments"),
    ],
)
def test_durations_outside_the_role_settings_are_refused_and_change_nothing(
    admin, requester, role, ends_in, message
):
    before = AuditEvent.objects.count()
    ends_at = timezone.now() + ends_in if ends_in is not None else None
    with pytest.raises(ValidationError) as error:
        services.eligible_assign(actor=admin, role=role, principal=requester, ends_at=ends_at)
    assert message in " ".join(error.value.messages)
    assert not EligibleAssignment.objects.filter(user=requester).exists()
    assert AuditEvent.objects.count() == before


def test_permanent_eligibility_is_accepted_when_the_policy_allows_it(admin, requester, role):
    # Set up by the system: by a person, loosening waits for a second PIM Administrator
    # (roles/tests/test_two_person.py).
    services.role_settings_update(actor=None, role=role, changes={"eligible_allow_permanent": True})
    assignment = services.eligible_assign(actor=admin, role=role, principal=requester)
    assert assignment.ends_at is None


def test_an_assignment_cannot_be_backdated(admin, requester, role):
    with pytest.raises(ValidationError, match="past"):
        services.eligible_assign(
            actor=admin,
            role=role,
            principal=requester,
            starts_at=timezone.now() - timedelta(days=1),
            ends_at=timezone.now() + timedelta(days=1),
        )


def test_active_assignment_needs_a_justification_by_default(admin, requester, role):
    with pytest.raises(ValidationError, match="justification is required"):
        services.active_assign(
            actor=admin, role=role, principal=requester, ends_at=timezone.now() + timedelta(days=1)
        )
    assert not ActiveAssignment.objects.filter(user=requester).exists()


def test_active_assignment_beyond_180_days_is_refused(admin, requester, role):
    with pytest.raises(ValidationError, match="at most 180 days"):
        services.active_assign(
            actor=admin,
            role=role,
            principal=requester,
            ends_at=timezone.now() + timedelta(days=181),
            justification="Project",
        )


def test_active_assignment_requiring_mfa_needs_a_fresh_verification(admin, requester, role):
    services.role_settings_update(actor=admin, role=role, changes={"active_require_mfa": True})
    now = timezone.now()
    kwargs = dict(
        actor=admin, role=role, principal=requester, ends_at=now + timedelta(days=1), justification="x"
    )
    with pytest.raises(PermissionDenied):
        services.active_assign(**kwargs, mfa_verified_at=now - timedelta(minutes=6))
    assignment = services.active_assign(**kwargs, mfa_verified_at=now - timedelta(minutes=1))
    assert user_holds_role(user=requester, role=role)
    assert events("active_assignment.created")[-1].target_id == str(assignment.pk)


@pytest.mark.parametrize("text", ["bad\x00byte", "x" * 2001])
def test_justification_with_control_characters_or_oversized_is_refused(admin, requester, role, text):
    with pytest.raises(ValidationError):
        services.eligible_assign(
            actor=admin,
            role=role,
            principal=requester,
            ends_at=timezone.now() + timedelta(days=1),
            justification=text,
        )


def test_bad_scope_is_refused(admin, requester, role):
    with pytest.raises(ValidationError, match="not a valid scope"):
        services.eligible_assign(
            actor=admin,
            role=role,
            principal=requester,
            scope="/subscriptions/x",
            ends_at=timezone.now() + timedelta(days=1),
        )


def test_overlapping_eligibility_is_refused(admin, requester, role):
    ends = timezone.now() + timedelta(days=10)
    services.eligible_assign(actor=admin, role=role, principal=requester, ends_at=ends)
    with pytest.raises(ValidationError, match="already has an eligible assignment"):
        services.eligible_assign(actor=admin, role=role, principal=requester, ends_at=ends)


def test_outsider_cannot_assign(outsider, requester, role):
    with pytest.raises(PermissionDenied):
        services.eligible_assign(
            actor=outsider, role=role, principal=requester, ends_at=timezone.now() + timedelta(days=1)
        )
    assert not EligibleAssignment.objects.exists()


def test_role_owner_manages_eligibility_of_their_role_only(admin, requester, role):
    owner = UserFactory(username="owner")
    other_role = RoleFactory()
    services.role_owner_add(actor=admin, role=role, user=owner)
    assert events("role.owner_added")[-1].target_label.endswith("<owner>")
    ends = timezone.now() + timedelta(days=5)
    services.eligible_assign(actor=owner, role=role, principal=requester, ends_at=ends)
    with pytest.raises(PermissionDenied):
        services.eligible_assign(actor=owner, role=other_role, principal=requester, ends_at=ends)
    with pytest.raises(PermissionDenied):
        services.active_assign(actor=owner, role=role, principal=requester, ends_at=ends, justification="x")
    services.role_owner_remove(actor=admin, role=role, user=owner)
    owner = type(owner).objects.get(pk=owner.pk)  # fresh permission caches
    with pytest.raises(PermissionDenied):
        services.eligible_assign(actor=owner, role=role, principal=UserFactory(), ends_at=ends)


def test_extend_moves_the_end_later_and_records_before_and_after(admin, role):
    assignment = EligibleAssignmentFactory(role=role, ends_at=timezone.now() + timedelta(days=3))
    old_end = assignment.ends_at
    new_end = old_end + timedelta(days=10)
    services.eligible_extend(actor=admin, assignment=assignment, ends_at=new_end)
    assignment.refresh_from_db()
    assert assignment.ends_at == new_end
    event = events("eligible_assignment.extended")[-1]
    assert event.details["before"]["ends_at"].startswith(old_end.isoformat()[:19])
    with pytest.raises(ValidationError, match="later"):
        services.eligible_extend(actor=admin, assignment=assignment, ends_at=old_end)


def test_renew_refuses_a_live_assignment_and_grants_an_expired_one_again(admin, role):
    live = EligibleAssignmentFactory(role=role)
    with pytest.raises(ValidationError, match="extend"):
        services.eligible_renew(actor=admin, assignment=live, ends_at=timezone.now() + timedelta(days=5))
    expired = EligibleAssignmentFactory(
        role=role, starts_at=timezone.now() - timedelta(days=10), ends_at=timezone.now() - timedelta(days=1)
    )
    renewed = services.eligible_renew(
        actor=admin, assignment=expired, ends_at=timezone.now() + timedelta(days=5)
    )
    assert renewed.pk != expired.pk and renewed.is_current(timezone.now())
    assert events("eligible_assignment.renewed")[-1].details["renewed_from"] == str(expired.pk)


def test_removing_an_eligibility_ends_its_live_activation(admin, role):
    eligible = EligibleAssignmentFactory(role=role)
    activation = ActiveAssignmentFactory(
        user=eligible.user, role=role, eligible=eligible, origin="activation"
    )
    services.eligible_remove(actor=admin, assignment=eligible, reason="Left the team")
    assert not user_holds_role(user=eligible.user, role=role)
    activation.refresh_from_db()
    assert activation.end_reason == "removed"
    assert [e.action for e in events()[-2:]] == ["eligible_assignment.removed", "active_assignment.ended"]
    with pytest.raises(ValidationError, match="already ended"):
        services.eligible_remove(actor=admin, assignment=eligible)


def test_admin_revokes_an_active_assignment(admin, role):
    assignment = ActiveAssignmentFactory(role=role)
    services.active_remove(actor=admin, assignment=assignment, reason="Incident")
    assert not user_holds_role(user=assignment.user, role=role)
    assert events("active_assignment.removed")[-1].details["reason"] == "Incident"


def test_group_eligibility_is_assigned_to_the_group(admin, role):
    group = DirectoryGroupFactory()
    assignment = services.eligible_assign(
        actor=admin, role=role, principal=group, ends_at=timezone.now() + timedelta(days=1)
    )
    assert assignment.group == group and assignment.user is None


# --- anti-lockout ----------------------------------------------------------------------------


@pytest.fixture
def global_admin_role():
    return Role.objects.get(template_id="62e90394-69f5-4237-9190-012177145e10")


def test_the_last_permanent_global_administrator_cannot_be_removed(admin, global_admin_role):
    only = services.eligible_assign(actor=admin, role=global_admin_role, principal=UserFactory())
    with pytest.raises(services.LockoutError):
        services.eligible_remove(actor=admin, assignment=only)
    with pytest.raises(services.LockoutError):
        services.eligible_update(actor=admin, assignment=only, ends_at=timezone.now() + timedelta(days=1))
    only.refresh_from_db()
    assert only.ended_at is None and only.ends_at is None


def test_a_global_administrator_can_be_removed_when_another_permanent_one_remains(admin, global_admin_role):
    first = services.eligible_assign(actor=admin, role=global_admin_role, principal=UserFactory())
    services.eligible_assign(actor=admin, role=global_admin_role, principal=UserFactory())
    services.eligible_remove(actor=admin, assignment=first)
    first.refresh_from_db()
    assert first.end_reason == "removed"


def test_revoking_a_users_assignments_refuses_to_lock_out_the_last_global_administrator(
    admin, global_admin_role
):
    holder = UserFactory()
    services.eligible_assign(actor=admin, role=global_admin_role, principal=holder)
    with pytest.raises(services.LockoutError):
        services.active_assignments_revoke_for_user(actor=admin, user=holder, reason="leaving")


def test_revoking_a_users_assignments_ends_each_with_an_event(admin, role):
    user = UserFactory()
    first = ActiveAssignmentFactory(user=user, role=role)
    second = ActiveAssignmentFactory(user=user, role=RoleFactory())
    assert services.active_assignments_revoke_for_user(actor=admin, user=user, reason="leaving") == 2
    revoked = {e.target_id for e in events("active_assignment.revoked")}
    assert revoked == {str(first.pk), str(second.pk)}


# --- role settings -------------------------------------------------------------------------


def test_settings_change_is_audited_with_a_before_after_diff(admin, role):
    services.role_settings_update(
        actor=admin,
        role=role,
        changes={"activation_max_duration": timedelta(hours=2), "require_ticket": True},
    )
    event = events("role_settings.changed")[-1]
    assert event.details["changes"]["activation_max_duration"] == {"before": 28800, "after": 7200}
    assert event.details["changes"]["require_ticket"] == {"before": False, "after": True}
    assert "require_mfa" not in event.details["changes"]


def test_a_settings_save_that_changes_nothing_writes_no_event(admin, approver, role):
    role.settings.approvers.add(approver)
    before = AuditEvent.objects.count()
    result = services.role_settings_update(
        actor=admin,
        role=role,
        changes={"activation_max_duration": timedelta(hours=8), "require_mfa": True},
        approvers=[approver],
        approver_groups=[],
    )
    assert AuditEvent.objects.count() == before
    assert result.activation_max_duration == timedelta(hours=8)
    services.role_settings_update(actor=admin, role=role, changes={}, approvers=[])
    assert events("role_settings.changed")[-1].details["changes"] == {
        "approvers": {"before": [approver.username], "after": []}
    }


@pytest.mark.parametrize("hours", [0.25, 25])
def test_activation_duration_outside_30_minutes_to_24_hours_is_refused(admin, role, hours):
    with pytest.raises(ValidationError, match="between 30 minutes and 24 hours"):
        services.role_settings_update(
            actor=admin, role=role, changes={"activation_max_duration": timedelta(hours=hours)}
        )
    role.settings.refresh_from_db()
    assert role.settings.activation_max_duration == timedelta(hours=8)


def test_requiring_approval_with_nobody_to_approve_is_refused(db, role):
    # Without named approvers, owners or PIM Administrators, nobody could approve.
    with pytest.raises(ValidationError, match="could approve"):
        services.role_settings_update(actor=None, role=role, changes={"require_approval": True})


def test_requiring_two_approvals_needs_two_approvers(admin, approver, role):
    with pytest.raises(ValidationError, match="2 approval"):
        services.role_settings_update(
            actor=admin,
            role=role,
            changes={"require_approval": True, "approvals_required": 2},
            approvers=[approver],
        )
    services.role_settings_update(
        actor=admin,
        role=role,
        changes={"require_approval": True, "approvals_required": 2},
        approvers=[approver, UserFactory()],
    )
    assert events("role_settings.changed")[-1].details["changes"]["approvals_required"]["after"] == 2


def test_outsider_cannot_change_settings(outsider, role):
    with pytest.raises(PermissionDenied):
        services.role_settings_update(actor=outsider, role=role, changes={"require_mfa": False})
    role.settings.refresh_from_db()
    assert role.settings.require_mfa is True
