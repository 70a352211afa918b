"""Authentication strength (issue 11): a phishing-resistant role is activated, and its
requests approved, only after a passkey's step-up; enforced in the services, so the portal,
the API and anything else calling them obey it alike."""

import pytest
from django.core.exceptions import ValidationError

from activations import services
from activations.models import ActivationRequest, Approval
from roles.models import AuthenticationStrength

from .helpers import HOUR, T0, eligible_for, request_activation, request_events, role_with

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
CLOCK_START = T0

STRONG = AuthenticationStrength.PHISHING_RESISTANT


def test_a_code_step_up_cannot_activate_a_phishing_resistant_role(requester):
    role = role_with(name="Vault Administrator", activation_authentication_strength=STRONG)
    eligible = eligible_for(requester, role)

    with pytest.raises(ValidationError) as refused:
        request_activation(requester, eligible, mfa_factor="totp")

    message = refused.value.message_dict["otp_token"][0]
    assert message.startswith(
        "Vault Administrator needs a passkey to activate (its authentication strength is"
    )
    assert "an authenticator app code is not accepted for it" in message
    assert "You have no passkey yet" in message
    assert not ActivationRequest.objects.filter(requester=requester).exists()


@pytest.mark.parametrize("factor", [None, "", "recovery_code", "something"])
def test_no_other_factor_passes_for_a_passkey(requester, factor):
    role = role_with(activation_authentication_strength=STRONG)

    with pytest.raises(ValidationError):
        request_activation(requester, eligible_for(requester, role), mfa_factor=factor)


def test_a_stale_passkey_step_up_is_refused_too(requester, clock, settings):
    role = role_with(activation_authentication_strength=STRONG)
    verified_at = T0 - settings.PIM_STEP_UP_WINDOW - HOUR

    with pytest.raises(ValidationError) as refused:
        request_activation(
            requester, eligible_for(requester, role), mfa_factor="passkey", mfa_verified_at=verified_at
        )

    assert "confirm with one of your passkeys" in refused.value.message_dict["otp_token"][0]


def test_a_fresh_passkey_step_up_activates_it_and_is_recorded(requester):
    role = role_with(activation_authentication_strength=STRONG)

    request = request_activation(requester, eligible_for(requester, role), mfa_factor="passkey")

    assert request.status == ActivationRequest.Status.GRANTED
    assert request.mfa_factor == "passkey"
    [event] = request_events(request, "activation.granted")
    assert event.details["mfa_factor"] == "passkey"


def test_any_mfa_takes_a_code(requester):
    role = role_with()  # the default strength

    request = request_activation(requester, eligible_for(requester, role), mfa_factor="totp")

    assert request.status == ActivationRequest.Status.GRANTED and request.mfa_factor == "totp"


def test_approving_a_phishing_resistant_role_takes_a_passkey_denying_does_not(
    requester, approver, second_admin
):
    role = role_with(approvers=[approver, second_admin], approval_authentication_strength=STRONG)
    first = request_activation(requester, eligible_for(requester, role))

    with pytest.raises(ValidationError) as refused:
        services.activation_approve(approver=approver, request=first, mfa_verified_at=T0, mfa_factor="totp")
    assert "Approving requests for" in refused.value.message_dict["otp_token"][0]
    assert not Approval.objects.filter(request=first).exists()

    approved = services.activation_approve(
        approver=approver, request=first, mfa_verified_at=T0, mfa_factor="passkey"
    )
    assert approved.status == ActivationRequest.Status.GRANTED
    assert Approval.objects.get(request=first).mfa_factor == "passkey"
    [event] = request_events(first, "activation.approved")
    assert event.details["mfa_factor"] == "passkey"


def test_a_denial_of_a_phishing_resistant_roles_request_takes_any_mfa(requester, approver):
    role = role_with(approvers=[approver], approval_authentication_strength=STRONG)
    request = request_activation(requester, eligible_for(requester, role))

    denied = services.activation_deny(
        approver=approver, request=request, reason="Not now", mfa_verified_at=T0, mfa_factor="totp"
    )

    assert denied.status == ActivationRequest.Status.DENIED


def test_a_request_made_with_a_code_cannot_be_approved_once_the_role_wants_a_passkey(requester, approver):
    role = role_with(approvers=[approver])
    request = request_activation(requester, eligible_for(requester, role), mfa_factor="totp")
    role.settings.activation_authentication_strength = STRONG
    role.settings.save()

    with pytest.raises(ValidationError) as refused:
        services.activation_approve(
            approver=approver, request=request, mfa_verified_at=T0, mfa_factor="passkey"
        )

    assert "now requires a passkey to activate" in refused.value.messages[0]
