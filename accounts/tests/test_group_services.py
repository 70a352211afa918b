"""Services for profiles and group membership (membership gives roles, so it is audited and
guarded like an assignment)."""

import threading
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.utils import timezone

from accounts import services
from accounts.tests.helpers import events_after, last_seq
from accounts.tests.test_concurrency import run_concurrently
from audit.models import AuditEvent
from roles.models import ActiveAssignment
from roles.selectors import portal_role, user_holds_role
from roles.services import LockoutError
from tests.factories import (
    ActiveAssignmentFactory,
    DirectoryGroupFactory,
    EligibleAssignmentFactory,
    RoleFactory,
    UserFactory,
)

pytestmark = pytest.mark.django_db


# --- user_update ---------------------------------------------------------------------------


def test_user_update_writes_the_diff(admin, requester):
    seq = last_seq()
    services.user_update(
        actor=admin, user=requester, changes={"email": " rita@corp.test ", "display_name": "Rita"}
    )
    requester.refresh_from_db()
    assert requester.email == "rita@corp.test" and requester.display_name == "Rita"
    events = events_after(seq)
    assert [e.action for e in events] == ["user.changed"]
    assert events[0].actor == admin
    assert events[0].details["changes"]["email"] == {
        "before": "requester@example.test",
        "after": "rita@corp.test",
    }


def test_user_update_without_a_real_change_writes_nothing(admin, requester):
    seq = last_seq()
    services.user_update(actor=admin, user=requester, changes={"display_name": "Rita Requester"})
    assert events_after(seq) == []


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"username": "root"}, "can be changed"),
        ({"is_superuser": True}, "can be changed"),
        ({"email": "not-an-address"}, "valid email"),
        ({"display_name": "x" * 257}, "at most 256"),
        ({"display_name": "bell\x07"}, "control characters"),
    ],
)
def test_user_update_refuses_bad_changes(admin, requester, changes, message):
    seq = last_seq()
    with pytest.raises(ValidationError, match=message):
        services.user_update(actor=admin, user=requester, changes=changes)
    requester.refresh_from_db()
    assert requester.username == "requester" and not requester.is_superuser
    assert events_after(seq) == []


def test_nobody_manages_themselves_even_through_others(admin, requester, approver, reviewer):
    services.user_update(actor=admin, user=approver, changes={"manager": requester})
    services.user_update(actor=admin, user=reviewer, changes={"manager": approver})
    with pytest.raises(ValidationError, match="own manager"):
        services.user_update(actor=admin, user=requester, changes={"manager": requester})
    with pytest.raises(ValidationError, match="own manager"):
        services.user_update(actor=admin, user=requester, changes={"manager": reviewer})


def test_a_deactivated_manager_is_refused(admin, requester, outsider):
    outsider.is_active = False
    outsider.save()
    with pytest.raises(ValidationError, match="deactivated"):
        services.user_update(actor=admin, user=requester, changes={"manager": outsider})


def test_user_update_needs_the_permission(auditor, requester):
    with pytest.raises(PermissionDenied):
        services.user_update(actor=auditor, user=requester, changes={"display_name": "Nope"})
    with pytest.raises(PermissionDenied):
        services.user_update(actor=requester, user=requester, changes={"display_name": "Me"})


# --- group_create / group_update -----------------------------------------------------------


def test_group_create_is_audited(admin):
    seq = last_seq()
    group = services.group_create(actor=admin, name=" Finance ", description="Money people")
    assert group.name == "Finance"
    events = events_after(seq)
    assert [e.action for e in events] == ["group.created"]
    assert events[0].target_id == str(group.pk)
    assert events[0].details == {"after": {"name": "Finance", "description": "Money people"}}


def test_group_names_are_unique_whatever_the_case(admin):
    services.group_create(actor=admin, name="Finance")
    with pytest.raises(ValidationError, match="already exists"):
        services.group_create(actor=admin, name="FINANCE")
    with pytest.raises(ValidationError, match="required"):
        services.group_create(actor=admin, name="  ")


def test_group_create_needs_the_permission(auditor, requester):
    for actor in (auditor, requester):
        with pytest.raises(PermissionDenied):
            services.group_create(actor=actor, name="Mine")


def test_group_update_renames_with_a_diff(admin):
    group = DirectoryGroupFactory(name="Finance")
    DirectoryGroupFactory(name="Legal")
    seq = last_seq()
    services.group_update(actor=admin, group=group, changes={"name": "Finance Admins"})
    assert [e.details for e in events_after(seq, action="group.changed")] == [
        {"changes": {"name": {"before": "Finance", "after": "Finance Admins"}}}
    ]
    with pytest.raises(ValidationError, match="already exists"):
        services.group_update(actor=admin, group=group, changes={"name": "legal"})
    with pytest.raises(ValidationError, match="can be changed"):
        services.group_update(actor=admin, group=group, changes={"external_id": "x"})


# --- group_member_add ----------------------------------------------------------------------


@pytest.fixture
def payroll():
    return RoleFactory(name="Payroll Administrator")


@pytest.fixture
def group(payroll):
    group = DirectoryGroupFactory(name="Payroll Team")
    ActiveAssignmentFactory(user=None, group=group, role=payroll)
    return group


def test_a_new_member_holds_the_groups_role_at_once(admin, requester, group, payroll):
    seq = last_seq()
    services.group_member_add(actor=admin, group=group, user=requester)
    assert user_holds_role(user=requester, role=payroll)
    events = events_after(seq)
    assert [e.action for e in events] == ["group.member_added"]
    assert events[0].actor == admin and events[0].target_id == str(requester.pk)
    assert events[0].details == {"group": "Payroll Team", "group_id": group.pk}


def test_adding_twice_or_adding_a_deactivated_person_is_refused(admin, requester, outsider, group):
    services.group_member_add(actor=admin, group=group, user=requester)
    with pytest.raises(ValidationError, match="already a member"):
        services.group_member_add(actor=admin, group=group, user=requester)
    outsider.is_active = False
    outsider.save()
    with pytest.raises(ValidationError, match="deactivated"):
        services.group_member_add(actor=admin, group=group, user=outsider)
    assert list(group.members.all()) == [requester]


def test_membership_changes_need_the_permission(auditor, requester, group):
    with pytest.raises(PermissionDenied):
        services.group_member_add(actor=auditor, group=group, user=auditor)
    group.members.add(requester)
    with pytest.raises(PermissionDenied):
        services.group_member_remove(actor=requester, group=group, user=requester)
    assert list(group.members.all()) == [requester]


# --- group_member_remove -------------------------------------------------------------------


def test_a_removed_member_loses_the_groups_role_at_once(admin, requester, group, payroll):
    group.members.add(requester)
    seq = last_seq()
    services.group_member_remove(actor=admin, group=group, user=requester)
    assert not user_holds_role(user=requester, role=payroll)
    events = events_after(seq)
    assert [e.action for e in events] == ["group.member_removed"]
    assert events[0].details == {"group": "Payroll Team", "group_id": group.pk, "activations_ended": 0}


def test_removing_someone_who_is_not_a_member_is_refused(admin, requester, group):
    with pytest.raises(ValidationError, match="not a member"):
        services.group_member_remove(actor=admin, group=group, user=requester)


def test_activations_of_the_groups_eligibility_end_when_the_member_leaves(admin, requester, payroll):
    group = DirectoryGroupFactory()
    group.members.add(requester)
    through_group = EligibleAssignmentFactory(user=None, group=group, role=payroll)
    activation = ActiveAssignmentFactory(
        user=requester, role=payroll, origin="activation", eligible=through_group
    )
    other_role = RoleFactory()
    other = ActiveAssignmentFactory(
        user=requester,
        role=other_role,
        origin="activation",
        eligible=EligibleAssignmentFactory(user=requester, role=other_role),
    )
    seq = last_seq()
    services.group_member_remove(actor=admin, group=group, user=requester)
    activation.refresh_from_db()
    other.refresh_from_db()
    assert activation.ended_at is not None and activation.end_reason == ActiveAssignment.EndReason.REMOVED
    assert other.ended_at is None
    assert not user_holds_role(user=requester, role=payroll)
    assert user_holds_role(user=requester, role=other_role)
    events = events_after(seq)
    assert [e.action for e in events] == ["active_assignment.ended", "group.member_removed"]
    assert events[0].target_id == str(activation.pk)
    assert "left group" in events[0].details["because"]
    assert events[1].details["activations_ended"] == 1


@pytest.fixture
def pim_admins(requester):
    """The only permanent hold on PIM Administrator: an eligibility of a one-member group."""
    group = DirectoryGroupFactory(name="PIM Admins")
    group.members.add(requester)
    EligibleAssignmentFactory(user=None, group=group, role=portal_role("pim.administrator"), ends_at=None)
    return group


def test_the_last_active_member_of_the_last_permanent_holder_cannot_leave(admin, requester, pim_admins):
    seq = last_seq()
    with pytest.raises(LockoutError, match="anti-lockout"):
        services.group_member_remove(actor=admin, group=pim_admins, user=requester)
    assert list(pim_admins.members.all()) == [requester]
    assert events_after(seq) == []


def test_a_deactivated_member_does_not_count_as_the_one_who_stays(admin, requester, outsider, pim_admins):
    outsider.is_active = False
    outsider.save()
    pim_admins.members.add(outsider)
    with pytest.raises(LockoutError):
        services.group_member_remove(actor=admin, group=pim_admins, user=requester)


def test_a_member_may_leave_while_another_active_member_stays(admin, requester, approver, pim_admins):
    pim_admins.members.add(approver)
    services.group_member_remove(actor=admin, group=pim_admins, user=requester)
    assert list(pim_admins.members.all()) == [approver]


def test_a_member_may_leave_when_someone_else_holds_the_role_permanently(admin, requester, pim_admins):
    EligibleAssignmentFactory(user=UserFactory(), role=portal_role("pim.administrator"), ends_at=None)
    services.group_member_remove(actor=admin, group=pim_admins, user=requester)
    assert not pim_admins.members.exists()


def test_ending_the_last_activation_of_a_protected_role_by_leaving_is_refused(requester):
    """Nobody else holds PIM Administrator at all: the leaver's activation (through a group
    whose eligibility has lapsed) is the last hold."""
    role = portal_role("pim.administrator")
    group = DirectoryGroupFactory()
    group.members.add(requester)
    lapsed = EligibleAssignmentFactory(
        user=None,
        group=group,
        role=role,
        starts_at=timezone.now() - timedelta(days=10),
        ends_at=timezone.now() - timedelta(minutes=1),
    )
    ActiveAssignmentFactory(user=requester, role=role, origin="activation", eligible=lapsed)
    with pytest.raises(LockoutError):
        services.group_member_remove(actor=None, group=group, user=requester)
    assert user_holds_role(user=requester, role=role)


# --- Races (PostgreSQL) --------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_last_members_removed_at_once_leave_one_behind(requester, approver):
    group = DirectoryGroupFactory(name="PIM Admins")
    group.members.add(requester, approver)
    EligibleAssignmentFactory(user=None, group=group, role=portal_role("pim.administrator"), ends_at=None)
    leavers = iter([requester, approver])
    lock = threading.Lock()

    def leave():
        with lock:
            user = next(leavers)
        return services.group_member_remove(actor=None, group=group, user=user)

    results = run_concurrently(leave, count=2)

    assert sum(not isinstance(r, Exception) for r in results) == 1, results
    assert sum(isinstance(r, LockoutError) for r in results) == 1, results
    assert group.members.count() == 1
    assert AuditEvent.objects.filter(action="group.member_removed").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_member_added_five_times_at_once_is_added_once(requester):
    group = DirectoryGroupFactory()

    results = run_concurrently(
        lambda: services.group_member_add(actor=None, group=group, user=requester), count=5
    )

    assert sum(not isinstance(r, Exception) for r in results) == 1, results
    assert all(isinstance(r, services.AccountError) for r in results if isinstance(r, Exception))
    assert list(group.members.all()) == [requester]
    assert AuditEvent.objects.filter(action="group.member_added").count() == 1
