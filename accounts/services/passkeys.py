"""Passkeys (WebAuthn, through django-otp-webauthn): enrolling one (named; several per person),
checking an assertion (the single place passkeys are checked, like mfa_verify_code for codes),
and removing one.

A ceremony has two halves: ``*_begin`` returns the options for the browser's
``navigator.credentials`` call and the state to keep (in the session, or on an API token);
``*_complete`` takes that state back, once (the caller pops it before calling, so a replayed
assertion finds no challenge), with the browser's answer. The library's helper does the
cryptography; the portal decides who may, names the credential and writes the audit events.
"""

from typing import Any

from django.db import transaction
from django.http import HttpRequest
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.exceptions import OTPWebAuthnApiError
from django_otp_webauthn.models import AbstractWebAuthnCredential
from django_otp_webauthn.utils import get_credential_model
from webauthn.helpers.exceptions import WebAuthnException

from audit.models import AuditEvent
from audit.services import audit_record

from ..models import User
from .mfa import MfaError, _sessions_end
from .shared import AccountError

PASSKEY_NAME_MAX = 64

PASSKEY_FAILED_MESSAGE = "That passkey could not be checked. Try again, or use another passkey."

PASSKEY_CANCELLED_MESSAGE = "No passkey was used: the browser's prompt was closed or timed out. Try again."

# What a malformed or forged browser answer can raise inside the library's helper.
_CEREMONY_ERRORS = (OTPWebAuthnApiError, WebAuthnException, KeyError, ValueError, TypeError)


def _credential_model() -> type[AbstractWebAuthnCredential]:
    return get_credential_model()  # type: ignore[no-any-return]  # django-otp-webauthn is untyped


def _helper(request: HttpRequest) -> Any:
    return _credential_model().get_webauthn_helper(request=request)


def passkey_name_clean(name: str) -> str:
    """The passkey's name as typed, trimmed; AccountError if empty, too long or unprintable."""
    name = " ".join(str(name or "").split())
    if not name:
        raise AccountError("Give the passkey a name, such as the device or security key it lives on.")
    if len(name) > PASSKEY_NAME_MAX:
        raise AccountError(f"A passkey's name is at most {PASSKEY_NAME_MAX} characters.")
    if not name.isprintable():
        raise AccountError("A passkey's name cannot hold control characters.")
    return name


def passkey_registration_begin(*, user: User, request: HttpRequest) -> tuple[dict[str, Any], dict[str, Any]]:
    """Options for ``navigator.credentials.create`` and the state to keep until completion.
    The caller has checked a fresh step-up: adding a factor is sensitive."""
    if not user.is_active:
        raise AccountError("This account is deactivated.")
    options, state = _helper(request).register_begin(user=user)
    return options, state


def passkey_registration_complete(
    *, user: User, request: HttpRequest, state: dict[str, Any] | None, data: Any, name: str
) -> AbstractWebAuthnCredential:
    """Verify the browser's new credential against the kept state and save it under ``name``.
    Writes ``mfa.passkey_enrolled``; AccountError if anything does not check out."""
    name = passkey_name_clean(name)
    if not state:
        raise AccountError("That passkey set-up has expired or was already used: start again.")
    if not isinstance(data, dict):
        raise AccountError("The browser's answer was not understood: start again.")
    with transaction.atomic():
        try:
            with transaction.atomic():
                device = _helper(request).register_complete(user=user, state=state, data=data)
        except _CEREMONY_ERRORS:
            raise AccountError(
                "The passkey could not be added: the browser's answer did not check out."
            ) from None
        device.name = name
        device.save(update_fields=["name"])
        audit_record(
            action="mfa.passkey_enrolled",
            actor=user,
            target=user,
            details={"device": name, "aaguid": str(device.aaguid or "")},
        )
    return device


def passkey_authentication_begin(
    *, user: User, request: HttpRequest
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Options for ``navigator.credentials.get`` (the user's own passkeys only, user
    verification required) and the state to keep until completion."""
    if not user.is_active:
        raise MfaError("This account is deactivated.", code="inactive")
    if not _credential_model().objects.filter(user=user, confirmed=True).exists():
        raise MfaError("You have no passkey yet: add one on your Security page.", code="no_device")
    options, state = _helper(request).authenticate_begin(user=user, require_user_verification=True)
    return options, state


def passkey_verify(
    *, user: User, request: HttpRequest, state: dict[str, Any] | None, data: Any
) -> AbstractWebAuthnCredential:
    """Check a passkey assertion of the user against the kept state (single use: the caller
    popped it). Writes ``mfa.verified`` (method passkey) or ``mfa.failed``; on failure the
    audit event is committed before MfaError is raised, so call this outside any transaction."""
    reason, message = _assertion_problem(user, state, data)
    if not reason:
        try:
            with transaction.atomic():
                device = _helper(request).authenticate_complete(user=user, state=state, data=data)
                if not device.confirmed:
                    raise _Disabled
                details = {"method": "passkey", "device": device.name}
                audit_record(action="mfa.verified", actor=user, target=user, details=details)
                return device
        except _Disabled:
            reason, message = "disabled", "That passkey is disabled."
        except _CEREMONY_ERRORS:
            reason, message = "wrong_passkey", PASSKEY_FAILED_MESSAGE
    audit_record(
        action="mfa.failed",
        actor=user,
        target=user,
        details={"method": "passkey", "reason": reason},
        outcome=AuditEvent.Outcome.FAILURE,
    )
    raise MfaError(message, code=reason)


class _Disabled(Exception):
    """Rolls back a check that used a disabled passkey."""


def _assertion_problem(user: User, state: dict[str, Any] | None, data: Any) -> tuple[str, str]:
    if not state:
        return "no_challenge", "That passkey check has expired or was already used: try again."
    if not isinstance(data, dict):
        return "malformed", PASSKEY_FAILED_MESSAGE
    if not User.objects.filter(pk=user.pk, is_active=True).exists():
        return "inactive", "This account is deactivated."
    return "", ""


def passkey_remove(*, user: User, device: AbstractWebAuthnCredential) -> None:
    """Remove one of the user's passkeys and end the user's sessions (the caller keeps its own
    with update_session_auth_hash). An authenticator app always remains (removing that is
    refused while it is the last one), so removing a passkey never leaves the account without
    MFA."""
    with transaction.atomic():
        model = _credential_model()
        if not model.objects.select_for_update().filter(user=user, pk=device.pk).exists():
            raise AccountError("That passkey is already gone.")
        if not TOTPDevice.objects.filter(user=user, confirmed=True).exists():
            raise AccountError("Set up an authenticator app before removing a passkey.")
        model.objects.filter(pk=device.pk).delete()
        _sessions_end(user)  # as for an authenticator app: whoever had it is signed out everywhere
        audit_record(
            action="mfa.passkey_removed",
            actor=user,
            target=user,
            details={"device": device.name, "sessions_ended": True},
        )
