"""The role setting "authentication strength" (issue 11), for activation and for approval:
validated by the role-settings service, audited in its diff, and lowering it from
phishing-resistant is a loosening (the two-person rule)."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.tests.helpers import events_after, last_seq
from roles import services, two_person
from roles.models import AuthenticationStrength, PendingChange, RoleSettings
from tests.factories import RoleFactory

pytestmark = pytest.mark.django_db

STRONG, ANY = AuthenticationStrength.PHISHING_RESISTANT, AuthenticationStrength.ANY_MFA


@pytest.fixture
def role():
    return RoleFactory(name="Vault Administrator", privileged=True)


def fresh(role) -> RoleSettings:
    return RoleSettings.objects.get(role=role)


def test_both_default_to_any_mfa(role):
    assert (fresh(role).activation_authentication_strength, fresh(role).approval_authentication_strength) == (
        ANY,
        ANY,
    )
    assert not fresh(role).activation_needs_passkey and not fresh(role).approval_needs_passkey


def test_tightening_applies_at_once_and_is_audited(admin, role):
    seq = last_seq()

    result = services.role_settings_update(
        actor=admin,
        role=role,
        changes={"activation_authentication_strength": STRONG, "approval_authentication_strength": STRONG},
    )

    assert isinstance(result, RoleSettings)
    assert fresh(role).activation_needs_passkey and fresh(role).approval_needs_passkey
    [event] = events_after(seq)
    assert event.action == "role_settings.changed"
    assert event.details["changes"]["activation_authentication_strength"] == {"before": ANY, "after": STRONG}


@pytest.mark.parametrize("field", ["activation_authentication_strength", "approval_authentication_strength"])
def test_lowering_a_privileged_roles_strength_waits_for_a_second_administrator(
    admin, second_admin, role, field
):
    services.role_settings_update(actor=None, role=role, changes={field: STRONG})

    change = services.role_settings_update(actor=admin, role=role, changes={field: ANY})

    assert isinstance(change, PendingChange)
    assert change.payload == {"changes": {field: ANY}}
    assert getattr(fresh(role), field) == STRONG
    assert two_person.settings_loosened(fresh(role), _with(fresh(role), **{field: ANY})) == [field]


def test_an_unknown_strength_is_refused_and_changes_nothing(admin, role):
    with pytest.raises(ValidationError) as refused:
        services.role_settings_update(
            actor=admin, role=role, changes={"approval_authentication_strength": "sms"}
        )

    assert "approval_authentication_strength" in refused.value.message_dict
    assert fresh(role).approval_authentication_strength == ANY


def test_a_phishing_resistant_activation_needs_mfa_on(admin, role):
    with pytest.raises(ValidationError) as refused:
        services.role_settings_update(
            actor=admin,
            role=role,
            changes={"require_mfa": False, "activation_authentication_strength": STRONG},
        )

    assert "turn Require MFA on" in refused.value.message_dict["activation_authentication_strength"][0]


def test_the_database_refuses_an_unknown_strength(role):
    with pytest.raises(IntegrityError), transaction.atomic():
        RoleSettings.objects.filter(role=role).update(activation_authentication_strength="weak")


def _with(role_settings: RoleSettings, **values) -> RoleSettings:
    for field, value in values.items():
        setattr(role_settings, field, value)
    return role_settings
