from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from roles.selectors import (
    AmbiguousRole,
    GroupAccessRef,
    Holding,
    permissions_from_active_roles,
    role_holding,
    user_holds_role,
)
from tests.factories import ActiveAssignmentFactory, DirectoryGroupFactory, RoleFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_holds_role_is_exact_at_the_second_the_assignment_ends():
    start = timezone.now()
    assignment = ActiveAssignmentFactory(starts_at=start, ends_at=start + timedelta(hours=1))
    user, role = assignment.user, assignment.role
    end = assignment.ends_at
    assert user_holds_role(user=user, role=role, at=start)
    assert user_holds_role(user=user, role=role, at=end - timedelta(microseconds=1))
    assert not user_holds_role(user=user, role=role, at=end)
    assert not user_holds_role(user=user, role=role, at=start - timedelta(microseconds=1))


def test_holds_role_ends_without_any_job_running():
    with time_machine.travel("2026-11-27 10:00:00+00:00", tick=False):
        assignment = ActiveAssignmentFactory(
            starts_at=timezone.now(), ends_at=timezone.now() + timedelta(minutes=30)
        )
        assert user_holds_role(user=assignment.user, role=assignment.role)
    with time_machine.travel("2026-11-27 10:30:00+00:00", tick=False):
        assert not user_holds_role(user=assignment.user, role=assignment.role)


def test_holding_reports_until_and_permanent():
    timed = ActiveAssignmentFactory()
    holding = role_holding(user=timed.user, role=timed.role)
    assert holding.active and holding.until == timed.ends_at
    permanent = ActiveAssignmentFactory(ends_at=None)
    holding = role_holding(user=permanent.user, role=permanent.role)
    assert holding.active and holding.until is None


def test_an_ended_assignment_is_held_before_its_end_and_not_after():
    assignment = ActiveAssignmentFactory()
    ended_at = timezone.now()
    assignment.ended_at = ended_at
    assignment.save()
    assert user_holds_role(user=assignment.user, role=assignment.role, at=ended_at - timedelta(seconds=1))
    assert not user_holds_role(user=assignment.user, role=assignment.role, at=ended_at)


def test_group_members_inherit_the_groups_active_role():
    member, other = UserFactory(), UserFactory()
    group = DirectoryGroupFactory()
    group.members.add(member)
    assignment = ActiveAssignmentFactory(user=None, group=group)
    assert user_holds_role(user=member, role=assignment.role)
    assert not user_holds_role(user=other, role=assignment.role)


def test_scope_covers_children_but_not_siblings_or_parents():
    sub = "/subscriptions/11111111-1111-4111-8111-111111111111"
    role = RoleFactory(kind="azure")
    assignment = ActiveAssignmentFactory(role=role, scope=sub)
    user = assignment.user
    assert user_holds_role(user=user, role=role, scope=sub)
    assert user_holds_role(user=user, role=role, scope=f"{sub}/resourceGroups/web")
    assert not user_holds_role(user=user, role=role, scope="/")
    assert not user_holds_role(user=user, role=role, scope=sub + "0")
    assert not user_holds_role(
        user=user, role=role, scope="/subscriptions/22222222-2222-4222-8222-222222222222"
    )


def test_a_deactivated_user_holds_nothing():
    assignment = ActiveAssignmentFactory()
    assignment.user.is_active = False
    assignment.user.save()
    assert not user_holds_role(user=assignment.user, role=assignment.role)


def test_permissions_come_only_from_active_portal_roles():
    role = RoleFactory(grants_permissions=["roles.view_role", "audit.view_auditevent"])
    assignment = ActiveAssignmentFactory(role=role)
    assert permissions_from_active_roles(user=assignment.user) == {"roles.view_role", "audit.view_auditevent"}
    assert permissions_from_active_roles(user=assignment.user, at=assignment.ends_at) == set()


def test_a_portal_role_at_a_narrower_scope_grants_no_portal_permission():
    role = RoleFactory(grants_permissions=["roles.view_role"])
    assignment = ActiveAssignmentFactory(role=role, scope="/apps/payroll")
    assert permissions_from_active_roles(user=assignment.user) == set()


def test_a_role_named_both_by_its_id_and_by_its_template_id_counts_once():
    """A role whose template id is its own id (as text) is one role, not an ambiguous two."""
    assignment = ActiveAssignmentFactory()
    role = assignment.role
    role.template_id = str(role.pk)
    role.save()

    holding = role_holding(user=assignment.user.username, role=str(role.pk))

    assert holding.active and holding.assignment_id == assignment.pk


def test_an_id_that_is_another_roles_template_id_is_ambiguous():
    assignment = ActiveAssignmentFactory()
    RoleFactory(kind="azure", template_id=str(assignment.role.pk))

    with pytest.raises(AmbiguousRole):
        role_holding(user=assignment.user.username, role=str(assignment.role.pk))


def test_an_empty_reference_names_no_role_even_where_roles_have_no_template_id():
    """template_id "" means "none": it names nothing (and so is not ambiguous either)."""
    assignment = ActiveAssignmentFactory()
    RoleFactory()
    assert assignment.role.template_id == ""

    assert role_holding(user=assignment.user.username, role="") == Holding(active=False)


def test_an_empty_group_reference_names_no_group_even_where_groups_have_no_object_id():
    """external_id "" means "not in Entra": it names no group (nor fails on several)."""
    member = UserFactory()
    for group in (DirectoryGroupFactory(), DirectoryGroupFactory()):  # portal-only groups
        group.members.add(member)
        role = RoleFactory(kind="group", governed_group=group, group_access="member")
        ActiveAssignmentFactory(user=member, role=role)
        assert role_holding(user=member.username, role=GroupAccessRef(str(group.pk), "member")).active

    assert role_holding(user=member.username, role=GroupAccessRef("", "member")) == Holding(active=False)
