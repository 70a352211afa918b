"""Govern a group from /manage/roles/ (PIM for Groups): PIM Administrators only, synced
groups only, through group_govern / group_ungovern."""

import pytest
from django.urls import reverse

from accounts.models import DirectoryGroup
from audit.models import AuditEvent
from roles.models import Role
from roles.services import group_govern
from tests.factories import EligibleAssignmentFactory

pytestmark = pytest.mark.django_db
GOVERN = reverse("manage_roles:group_govern")


@pytest.fixture
def groups():
    return {
        "synced": DirectoryGroup.objects.create(
            name="Payroll Admins", external_id="93000000-0000-4000-8000-000000000003"
        ),
        "local": DirectoryGroup.objects.create(name="Local Team"),
        "governed": DirectoryGroup.objects.create(
            name="Tier0", external_id="90000000-0000-4000-8000-000000000001"
        ),
    }


def test_an_administrator_governs_a_synced_group_from_the_roles_list(admin, verified_client, groups):
    group_govern(actor=None, group=groups["governed"])
    client = verified_client(admin)
    assert f'href="{GOVERN}" id="govern-group"' in client.get(reverse("manage_roles:list")).content.decode()

    form = client.get(GOVERN)
    choices = [str(label) for _, label in form.context["form"].fields["group"].choices][1:]
    assert choices == ["Payroll Admins"]  # not the local group, not one already governed

    response = client.post(GOVERN, {"group": groups["synced"].pk})

    member = Role.objects.get(governed_group=groups["synced"], group_access="member")
    assert response.status_code == 302 and response.url == reverse("manage_roles:role", args=[member.pk])
    assert AuditEvent.objects.filter(action="group.governed").last().actor_id == admin.pk
    detail = client.get(response.url).content.decode()
    assert "Membership of the Entra group <strong>Payroll Admins</strong>" in detail
    assert "Stop governing Payroll Admins" in detail


def test_a_local_group_cannot_be_picked(admin, verified_client, groups):
    response = verified_client(admin).post(GOVERN, {"group": groups["local"].pk})

    assert response.status_code == 200 and response.context["form"].errors["group"]
    assert not Role.objects.filter(kind="group").exists()


def test_everyone_else_gets_404(requester, verified_client, groups):
    client = verified_client(requester)

    assert client.get(GOVERN).status_code == 404
    assert client.post(GOVERN, {"group": groups["synced"].pk}).status_code == 404
    ungovern = reverse("manage_roles:group_ungovern", args=[groups["synced"].pk])
    assert client.post(ungovern).status_code == 404
    assert not Role.objects.filter(kind="group").exists()


def test_ungoverning_is_refused_with_a_message_while_assignments_are_open(admin, verified_client, groups):
    member, _owner = group_govern(actor=None, group=groups["synced"])
    eligible = EligibleAssignmentFactory(role=member)
    client = verified_client(admin)
    ungovern = reverse("manage_roles:group_ungovern", args=[groups["synced"].pk])

    refused = client.post(ungovern, follow=True)
    assert "still has 1 open eligible or active assignment" in refused.content.decode()
    assert Role.objects.filter(governed_group=groups["synced"]).count() == 2

    eligible.delete()
    done = client.post(ungovern)
    assert done.status_code == 302 and done.url == reverse("manage_roles:list")
    assert not Role.objects.filter(governed_group=groups["synced"]).exists()


def test_the_django_admin_governs_selected_groups_and_reports_refusals(admin, verified_client, groups):
    client = verified_client(admin)
    changelist = reverse("admin:accounts_directorygroup_changelist")
    picked = [groups["synced"].pk, groups["local"].pk]

    response = client.post(changelist, {"action": "govern_groups", "_selected_action": picked}, follow=True)

    text = response.content.decode()
    assert "Payroll Admins is governed." in text
    assert "Local Team: The group Local Team is not linked to Microsoft Entra ID" in text
    assert Role.objects.filter(governed_group=groups["synced"]).count() == 2
    assert not Role.objects.filter(governed_group=groups["local"]).exists()
    page = client.get(reverse("admin:accounts_directorygroup_change", args=[groups["synced"].pk]))
    assert "Member of Payroll Admins, Owner of Payroll Admins" in page.content.decode()


def test_a_group_role_cannot_be_made_by_hand(admin):
    from django.core.exceptions import ValidationError

    from roles.services import role_create

    with pytest.raises(ValidationError, match="governing the group"):
        role_create(actor=admin, name="Member of something", kind="group")
