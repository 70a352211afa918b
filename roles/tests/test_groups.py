"""PIM for Groups in the portal: governing a synced group makes its member and owner roles
(each with its own settings), and from there activation, approval, expiry, reviews and My
roles treat them as any other role."""

from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import DirectoryGroup
from activations import jobs
from activations import services as activations
from activations.models import ActivationRequest
from audit.models import AuditEvent
from roles.models import ActiveAssignment, Role, RoleSettings
from roles.selectors import user_holds_role
from roles.services import (
    eligible_assign,
    eligible_remove,
    group_govern,
    group_ungovern,
    role_settings_update,
)
from tests.factories import EligibleAssignmentFactory, RoleFactory, UserFactory

pytestmark = pytest.mark.django_db
PAYROLL = "93000000-0000-4000-8000-000000000003"


@pytest.fixture
def group():
    return DirectoryGroup.objects.create(name="Payroll Admins", external_id=PAYROLL)


@pytest.fixture
def roles(group):
    member, owner = group_govern(actor=None, group=group)
    return {"member": member, "owner": owner}


def test_governing_a_group_makes_a_member_and_an_owner_role_with_their_own_settings(admin, group):
    member, owner = group_govern(actor=admin, group=group)

    assert (member.name, member.kind, member.governed_group, member.group_access) == (
        "Member of Payroll Admins",
        "group",
        group,
        "member",
    )
    assert (owner.name, owner.group_access) == ("Owner of Payroll Admins", "owner")
    assert RoleSettings.objects.filter(role__in=[member, owner]).count() == 2
    role_settings_update(actor=None, role=owner, changes={"require_approval": True})
    assert RoleSettings.objects.get(role=member).require_approval is False  # each its own
    [governed] = AuditEvent.objects.filter(action="group.governed")
    assert governed.actor_id == admin.pk and governed.details["external_id"] == PAYROLL
    assert AuditEvent.objects.filter(action="role.created", role_id__in=[member.pk, owner.pk]).count() == 2

    # Again: the same roles, nothing recorded.
    assert group_govern(actor=admin, group=group) == [member, owner]
    assert AuditEvent.objects.filter(action="group.governed").count() == 1


def test_only_a_synced_group_can_be_governed_and_only_by_an_administrator(group, requester):
    local = DirectoryGroup.objects.create(name="Local only")

    with pytest.raises(ValidationError, match="not linked to Microsoft Entra ID"):
        group_govern(actor=None, group=local)
    with pytest.raises(PermissionDenied):
        group_govern(actor=requester, group=group)
    assert not Role.objects.filter(kind="group").exists()


def test_a_name_taken_by_another_role_is_refused_whole(group):
    RoleFactory(name="Owner of Payroll Admins")

    with pytest.raises(ValidationError, match="already exists"):
        group_govern(actor=None, group=group)

    assert not Role.objects.filter(kind="group").exists()


def test_the_database_holds_group_roles_to_one_group_and_one_access(group, roles):
    with pytest.raises(IntegrityError), transaction.atomic():
        Role.objects.create(name="Loose", kind="group")
    with pytest.raises(IntegrityError), transaction.atomic():
        Role.objects.create(name="Half", kind="app", governed_group=group, group_access="member")
    with pytest.raises(IntegrityError), transaction.atomic():
        Role.objects.create(name="Twice", kind="group", governed_group=group, group_access="member")


def test_a_group_role_is_held_at_the_group_itself_only(roles, requester):
    now = timezone.now()
    with pytest.raises(ValidationError, match="a group role applies to its group as a whole"):
        eligible_assign(
            actor=None,
            role=roles["member"],
            principal=requester,
            scope="/apps/payroll",
            ends_at=now + timedelta(days=1),
            justification="x",
            now=now,
        )


def test_membership_is_activated_with_approval_and_ends_at_its_end(roles, requester, approver):
    member = roles["member"]
    role_settings_update(actor=None, role=member, changes={"require_approval": True}, approvers=[approver])
    eligible = EligibleAssignmentFactory(user=requester, role=member)
    now = timezone.now()

    request = activations.activation_request(
        requester=requester,
        eligible=eligible,
        duration=timedelta(hours=1),
        justification="Payroll run",
        mfa_verified_at=now,
        now=now,
    )
    assert request.status == ActivationRequest.Status.PENDING_APPROVAL
    assert not user_holds_role(user=requester, role=member)

    request = activations.activation_approve(
        approver=approver, request=request, reason="OK", mfa_verified_at=now, now=now
    )
    assert request.status == ActivationRequest.Status.GRANTED
    assert user_holds_role(user=requester, role=member)
    assert not user_holds_role(user=requester, role=roles["owner"])

    assert jobs.activation_expire_due(now=request.ends_at + timedelta(seconds=1)) == 1
    request.refresh_from_db()
    assert request.status == ActivationRequest.Status.EXPIRED
    assert ActiveAssignment.objects.get(role=member).end_reason == "expired"


def test_a_review_of_a_group_role_lists_the_people_who_hold_it(roles, requester, reviewer):
    from reviews.tests.helpers import definition_create, start

    other = UserFactory(username="other")
    EligibleAssignmentFactory(user=requester, role=roles["member"])
    EligibleAssignmentFactory(user=other, role=roles["member"])
    EligibleAssignmentFactory(user=reviewer, role=roles["owner"])
    definition = definition_create(
        roles=[roles["member"]], reviewer_type="named", named_reviewers=[reviewer], fallback_reviewer=reviewer
    )

    items = start(definition).items.select_related("user")

    assert sorted(item.user.username for item in items) == ["other", "requester"]


def test_my_roles_shows_the_groups_name_and_access(roles, requester, verified_client):
    EligibleAssignmentFactory(user=requester, role=roles["member"])
    EligibleAssignmentFactory(user=requester, role=roles["owner"])
    client = verified_client(requester)

    page = client.get(reverse("activations:my_roles")).content.decode()

    assert "Member of Payroll Admins" in page and "Owner of Payroll Admins" in page
    assert "Group member</span>" in page and "Group owner</span>" in page


def test_ungoverning_is_refused_while_assignments_are_open_then_removes_the_roles(
    admin, group, roles, requester
):
    now = timezone.now()
    eligible = eligible_assign(
        actor=None,
        role=roles["owner"],
        principal=requester,
        scope="/",
        ends_at=now + timedelta(days=1),
        justification="x",
        now=now,
    )

    with pytest.raises(ValidationError, match="1 open eligible or active assignment"):
        group_ungovern(actor=admin, group=group)
    assert Role.objects.filter(governed_group=group).count() == 2

    eligible_remove(actor=None, assignment=eligible, reason="Done", now=now)
    with pytest.raises(ValidationError, match="have a history"):
        group_ungovern(actor=admin, group=group)  # the ended eligibility is kept history
    assert Role.objects.filter(governed_group=group).count() == 2


def test_ungoverning_an_unused_group_removes_both_roles_audited(admin, group, roles, requester):
    with pytest.raises(PermissionDenied):
        group_ungovern(actor=requester, group=group)

    group_ungovern(actor=admin, group=group)

    assert not Role.objects.filter(governed_group=group).exists()
    assert not RoleSettings.objects.filter(role__in=roles.values()).exists()
    event = AuditEvent.objects.get(action="group.ungoverned")
    assert event.details["roles"] == ["Member of Payroll Admins", "Owner of Payroll Admins"]
    with pytest.raises(ValidationError, match="not governed"):
        group_ungovern(actor=admin, group=group)
