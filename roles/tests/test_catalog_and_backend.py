from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from accounts.models import User
from roles.backends import forget_cached_permissions
from roles.models import Role
from tests.factories import ActiveAssignmentFactory, UserFactory, portal_role

pytestmark = pytest.mark.django_db


def test_catalog_ships_the_real_entra_and_azure_built_in_roles():
    entra = Role.objects.filter(kind=Role.Kind.ENTRA, builtin=True)
    assert entra.count() >= 40
    expected = {
        "Global Administrator": "62e90394-69f5-4237-9190-012177145e10",
        "Privileged Role Administrator": "e8611ab8-c189-46e8-94e1-60213ab1f814",
        "User Administrator": "fe930be7-5e62-47db-91af-98c3a49a38b1",
        "Security Administrator": "194ae4cb-b126-40b2-bd5b-6091b380977d",
        "Global Reader": "f2ef992c-3afb-46b9-b7cf-a126ee74c451",
    }
    for name, template_id in expected.items():
        assert entra.get(name=name).template_id == template_id
    azure = dict(Role.objects.filter(kind=Role.Kind.AZURE).values_list("name", "template_id"))
    assert azure["Owner"] == "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
    assert azure["User Access Administrator"] == "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
    assert {"Contributor", "Reader"} <= set(azure)


def test_every_catalog_role_has_settings_with_entra_defaults():
    role = Role.objects.get(name="Security Reader")
    assert role.settings.activation_max_duration == timedelta(hours=8)
    assert role.settings.require_mfa and role.settings.require_justification
    assert not role.settings.require_approval
    assert role.settings.eligible_max_duration == timedelta(days=365)
    assert role.settings.active_max_duration == timedelta(days=180)
    assert not Role.objects.filter(settings__isnull=True).exists()


def test_global_administrator_and_pim_administrator_are_lockout_protected():
    protected = set(Role.objects.filter(lockout_protected=True).values_list("name", flat=True))
    assert protected == {"Global Administrator", "PIM Administrator"}
    assert Role.objects.get(name="Global Administrator").tier == Role.Tier.CRITICAL


def test_pim_administrator_permissions_last_exactly_as_long_as_the_role_is_active():
    user = UserFactory()
    assert not user.has_perm("roles.change_rolesettings")
    assignment = ActiveAssignmentFactory(user=user, role=portal_role("pim.administrator"))
    forget_cached_permissions(user)
    assert user.has_perm("roles.change_rolesettings")
    assert user.has_module_perms("roles")
    assert not user.has_perm("audit.change_auditevent")  # separation of duties
    assignment.ended_at = timezone.now()
    assignment.save()
    forget_cached_permissions(user)
    assert not user.has_perm("roles.change_rolesettings")


def test_auditor_reads_but_cannot_change():
    user = UserFactory()
    ActiveAssignmentFactory(user=user, role=portal_role("pim.auditor"))
    assert user.has_perm("audit.view_auditevent")
    assert not user.has_perm("roles.change_rolesettings")
    assert not user.has_perm("roles.manage_eligible_assignments")


def test_django_user_permissions_grant_nothing_standing():
    user = UserFactory()
    user.user_permissions.add(Permission.objects.get(codename="change_rolesettings"))
    user = User.objects.get(pk=user.pk)
    assert not user.has_perm("roles.change_rolesettings")
