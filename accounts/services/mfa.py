"""MFA: checking TOTP and recovery codes (the single place codes are checked), enrolling
an authenticator, retiring one, and recovery codes."""

import math
import re
import secrets

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.utils import get_credential_model

from audit.models import AuditEvent
from audit.services import audit_record

from ..models import User
from .shared import AccountError, _require_perm


class MfaError(ValidationError):
    """A code was refused: malformed, wrong, already used, throttled, or no device to check."""


# Recovery codes use lowercase base32 (no 0/1/8/9 look-alikes) and a length no TOTP code has,
# so the shape of the input says which kind of device to check.
RECOVERY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"

RECOVERY_CODE_LENGTH = 10

_TOTP_CODE = re.compile(r"[0-9]{6}|[0-9]{8}")

_RECOVERY_CODE = re.compile(rf"[{RECOVERY_ALPHABET}]{{{RECOVERY_CODE_LENGTH}}}")

_SEPARATORS = re.compile(r"[\s-]+")

MAX_CODE_INPUT = 64

CODE_FORMAT_MESSAGE = "Enter the 6-digit code from your authenticator app, or one of your recovery codes."


def mfa_code_normalize(token: str) -> tuple[type[Device], str]:
    """The device kind a code is for and the code as stored; MfaError if it cannot be a code."""
    token = str(token or "")
    if len(token) > MAX_CODE_INPUT:
        raise MfaError("That is far too long to be a code.", code="too_long")
    token = _SEPARATORS.sub("", token).lower()
    if _TOTP_CODE.fullmatch(token):
        return TOTPDevice, token
    if _RECOVERY_CODE.fullmatch(token):
        return StaticDevice, token
    raise MfaError(CODE_FORMAT_MESSAGE, code="format")


def mfa_verify_code(*, user: User, token: str) -> Device:
    """Check a TOTP or recovery code of the user: the single place codes are checked.

    The user's candidate devices are locked before the check, so a code is accepted once,
    also under concurrency (TOTP refuses steps at or before ``last_t``; a recovery code is
    deleted when used). Writes ``mfa.verified`` or ``mfa.failed``. On failure the audit event
    and the throttle count are committed before MfaError is raised: call this outside any
    transaction of your own, or they are rolled back with it.
    """
    device_class, token = mfa_code_normalize(token)
    method = _method(device_class)
    with transaction.atomic():
        devices = list(
            device_class.objects.devices_for_user(user, confirmed=True).select_for_update().order_by("pk")
        )
        problem = _verification_problem(user, devices, method)
        if problem is None:
            # verify_token itself skips (without counting) a device that is still throttled.
            device = next((d for d in devices if d.verify_token(token)), None)
            if device is not None:
                _throttle_reset_others(devices, device)
                audit_record(
                    action="mfa.verified",
                    actor=user,
                    target=user,
                    details={"method": method, "device": device.name},
                )
                return device
            problem = ("wrong_code", "That code is wrong or has already been used.")
        reason, message = problem
        audit_record(
            action="mfa.failed",
            actor=user,
            target=user,
            details={"method": method, "reason": reason},
            outcome=AuditEvent.Outcome.FAILURE,
        )
    raise MfaError(message, code=reason)


def _method(device_class: type[Device]) -> str:
    return "recovery_code" if device_class is StaticDevice else "totp"


def _verification_problem(user: User, devices: list[Device], method: str) -> tuple[str, str] | None:
    if not user.is_active:
        return ("inactive", "This account is deactivated.")
    if not devices:
        if method == "recovery_code":
            return ("no_device", "You have no recovery codes left.")
        return ("no_device", "You have no authenticator app set up.")
    wait = _throttle_wait(devices)
    if wait:
        return ("throttled", _throttled_message(wait))
    return None


def _throttled_message(wait: int) -> str:
    return f"Too many wrong codes; try again in {wait} second{'' if wait == 1 else 's'}."


def _throttle_wait(devices: list[Device]) -> int:
    """Seconds until one of the devices accepts a guess again (0: one accepts now)."""
    waits = []
    for device in devices:
        allowed, data = device.verify_is_allowed()
        if allowed:
            return 0
        locked_until = (data or {}).get("locked_until")
        waits.append(math.ceil((locked_until - timezone.now()).total_seconds()) if locked_until else 1)
    return max(1, min(waits)) if waits else 0


def _throttle_reset_others(devices: list[Device], used: Device) -> None:
    # A right code proves possession: the user's other devices of that kind forget the guesses.
    for device in devices:
        if device.pk != used.pk and device.throttling_failure_count:
            device.throttle_reset()


TOTP_DEVICE_NAME = "Authenticator app"

RECOVERY_DEVICE_NAME = "Recovery codes"


def mfa_enrolment_start(*, user: User) -> TOTPDevice:
    """A new unconfirmed authenticator for the user to scan, replacing any earlier unconfirmed one.

    Not audited: an unconfirmed device verifies nothing; confirming it is (``mfa.enrolled``)."""
    with transaction.atomic():
        TOTPDevice.objects.filter(user=user, confirmed=False).delete()
        return TOTPDevice.objects.create(user=user, name=TOTP_DEVICE_NAME, confirmed=False)


def mfa_enrolment_confirm(*, user: User, token: str) -> tuple[TOTPDevice, list[str]]:
    """Confirm the user's pending authenticator with a code it shows; returns the device and a
    fresh set of recovery codes (the only time they are readable)."""
    device_class, token = mfa_code_normalize(token)
    if device_class is not TOTPDevice:
        raise MfaError("Enter the 6-digit code your authenticator app shows.", code="format")
    with transaction.atomic():
        device = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).last()
        if device is None:
            raise MfaError(
                "There is no authenticator waiting for confirmation: start again.", code="no_device"
            )
        wait = _throttle_wait([device])
        if not wait and device.verify_token(token):
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            codes = _recovery_codes_replace(user)
            audit_record(
                action="mfa.enrolled",
                actor=user,
                target=user,
                details={"device": device.name, "recovery_codes": len(codes)},
            )
            return device, codes
    # Outside the transaction block: the throttle count of a wrong guess is kept.
    if wait:
        raise MfaError(_throttled_message(wait), code="throttled")
    raise MfaError(
        "That code is wrong. Check the time on your phone and try the newest code.", code="wrong_code"
    )


def mfa_device_remove(*, user: User, device: TOTPDevice) -> None:
    """Retire one of the user's authenticator apps (a lost phone); never the last one, which
    would leave the account protected by its password alone."""
    with transaction.atomic():
        devices = list(TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True))
        if device.pk not in {d.pk for d in devices}:
            raise AccountError("That authenticator app is already gone.")
        if len(devices) == 1:
            raise AccountError("This is your only authenticator app: add another one before removing it.")
        TOTPDevice.objects.filter(pk=device.pk).delete()
        _sessions_end(user)
        audit_record(
            action="mfa.device_removed",
            actor=user,
            target=user,
            details={"device": device.name, "sessions_ended": True},
        )


def mfa_recovery_codes_regenerate(*, user: User) -> list[str]:
    """Replace the user's recovery codes with new ones; the old ones stop working, and so do
    the user's sessions (the caller keeps its own with update_session_auth_hash)."""
    with transaction.atomic():
        codes = _recovery_codes_replace(user)
        _sessions_end(user)
        audit_record(
            action="mfa.recovery_codes_regenerated",
            actor=user,
            target=user,
            details={"count": len(codes), "sessions_ended": True},
        )
    return codes


def mfa_reset(*, actor: User | None, user: User, reason: str) -> int:
    """An administrator's reset: every authenticator, passkey and recovery code of the person goes,
    every session of theirs ends, and their next sign-in enrols a new authenticator.
    Returns how many devices were removed."""
    _require_perm(actor, "accounts.change_user", "You may not reset MFA.", attempted="mfa_reset")
    reason = _reason_clean(reason)
    if actor is not None and actor.pk == user.pk:
        raise AccountError("Reset your own authenticators on your MFA page, not here.")
    with transaction.atomic():
        locked = User.objects.select_for_update(no_key=True).get(pk=user.pk)
        totp: int = TOTPDevice.objects.filter(user=locked).count()
        TOTPDevice.objects.filter(user=locked).delete()
        static: int = StaticDevice.objects.filter(user=locked).count()
        StaticDevice.objects.filter(user=locked).delete()
        passkeys: int = get_credential_model().objects.filter(user=locked).count()
        get_credential_model().objects.filter(user=locked).delete()
        locked.session_epoch += 1
        locked.save(update_fields=["session_epoch"])
        audit_record(
            action="mfa.reset",
            actor=actor,
            target=locked,
            details={
                "reason": reason,
                "authenticators": totp,
                "recovery_devices": static,
                "passkeys": passkeys,
            },
        )
    return totp + static + passkeys


def _sessions_end(user: User) -> None:
    # The session hash includes the epoch (User.get_session_auth_hash): every session of the
    # user dies at its next request.
    User.objects.filter(pk=user.pk).update(session_epoch=F("session_epoch") + 1)
    user.session_epoch = User.objects.filter(pk=user.pk).values_list("session_epoch", flat=True).get()


def _reason_clean(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise AccountError({"reason": "A reason is required."})
    if len(reason) > settings.PIM_MAX_TEXT_LENGTH:
        raise AccountError({"reason": f"The reason is at most {settings.PIM_MAX_TEXT_LENGTH} characters."})
    return reason


def _recovery_codes_replace(user: User) -> list[str]:
    # One recovery device per user; keep its row (a session may be verified by it).
    device = StaticDevice.objects.select_for_update().filter(user=user).order_by("pk").first()
    if device is None:
        device = StaticDevice.objects.create(user=user, name=RECOVERY_DEVICE_NAME)
    else:
        StaticDevice.objects.filter(user=user).exclude(pk=device.pk).delete()
        device.token_set.all().delete()
        device.throttle_reset()
    codes = [_recovery_code() for _ in range(settings.PIM_RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return [f"{code[:5]}-{code[5:]}" for code in codes]


def _recovery_code() -> str:
    return "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(RECOVERY_CODE_LENGTH))
