"""Step-up: how recently this session proved possession of an MFA device (SPEC 2.3).

django-otp marks a whole session verified and keeps no time, so freshness is the portal's
own: the moment of the last verification is kept in the session, in UTC, with the factor that
made it (a code from an authenticator app, a recovery code, or a passkey): a role whose
authentication strength is phishing-resistant takes only a passkey's step-up. Only Django,
django-otp and its passkey plugin are needed here, so every app's view guards
(common.decorators) can use it.
"""

from datetime import datetime

import django_otp
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import models
from django.http import HttpRequest
from django.middleware.csrf import rotate_token
from django.utils import timezone
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import AbstractWebAuthnCredential
from django_otp_webauthn.utils import get_credential_model

VERIFIED_AT_SESSION_KEY = "pim_mfa_verified_at"

VERIFIED_FACTOR_SESSION_KEY = "pim_mfa_factor"


class Factor(models.TextChoices):
    """What proved possession at a step-up. Only a passkey is phishing-resistant: it signs the
    portal's origin, so a look-alike site cannot relay it; a code typed in can be."""

    TOTP = "totp", "authenticator app code"
    RECOVERY_CODE = "recovery_code", "recovery code"
    PASSKEY = "passkey", "passkey"


PHISHING_RESISTANT_FACTORS = frozenset({Factor.PASSKEY})


def device_factor(device: Device) -> Factor:
    """The factor a django-otp device stands for."""
    if isinstance(device, AbstractWebAuthnCredential):
        return Factor.PASSKEY
    if isinstance(device, StaticDevice):
        return Factor.RECOVERY_CODE
    return Factor.TOTP


def factor_is_phishing_resistant(factor: str | None) -> bool:
    return factor in PHISHING_RESISTANT_FACTORS


def mark_step_up(request: HttpRequest, device: Device) -> None:
    """Record a successful code check in the session: OTP-verified by ``device``, a new session
    key and a new CSRF token (so neither, seen before the check, is worth anything after it),
    and the time."""
    if device.user_id != request.user.pk:
        raise ValueError("The device does not belong to the signed-in user.")
    django_otp.login(request, device)
    request.session.cycle_key()
    rotate_token(request)
    request.session[VERIFIED_AT_SESSION_KEY] = timezone.now().isoformat()
    request.session[VERIFIED_FACTOR_SESSION_KEY] = str(device_factor(device))


def user_is_verified(user: object) -> bool:
    """Whether the user's session is OTP-verified (False for users OTPMiddleware has not seen)."""
    return getattr(user, "otp_device", None) is not None


def step_up_verified_at(request: HttpRequest) -> datetime | None:
    """When this session last verified a code, or None (services take it as ``mfa_verified_at``)."""
    if not request.user.is_authenticated or not user_is_verified(request.user):
        return None
    try:
        verified_at = datetime.fromisoformat(request.session.get(VERIFIED_AT_SESSION_KEY, ""))
    except (TypeError, ValueError):
        return None
    return verified_at if timezone.is_aware(verified_at) else None


def step_up_factor(request: HttpRequest) -> Factor | None:
    """The factor of this session's last step-up (None: none, or from before factors were kept,
    which counts as not phishing-resistant)."""
    if step_up_verified_at(request) is None:
        return None
    try:
        return Factor(request.session.get(VERIFIED_FACTOR_SESSION_KEY, ""))
    except ValueError:
        return None


def verification_is_fresh(
    verified_at: datetime | None,
    now: datetime | None = None,
    *,
    factor: str | None = None,
    phishing_resistant: bool = False,
) -> bool:
    """Whether a code was verified within PIM_STEP_UP_WINDOW of now (and, when
    ``phishing_resistant``, with a passkey): the one freshness rule that the view guards and
    every service taking ``mfa_verified_at`` apply."""
    now = now or timezone.now()
    if phishing_resistant and not factor_is_phishing_resistant(factor):
        return False
    return verified_at is not None and now - verified_at <= settings.PIM_STEP_UP_WINDOW


def step_up_is_fresh(request: HttpRequest, *, phishing_resistant: bool = False) -> bool:
    """Whether the session verified a code within PIM_STEP_UP_WINDOW of now (with a passkey,
    when ``phishing_resistant``)."""
    return verification_is_fresh(
        step_up_verified_at(request), factor=step_up_factor(request), phishing_resistant=phishing_resistant
    )


def passkeys_enrolled(*, user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether the user has a confirmed passkey."""
    if not user.is_authenticated:
        return False
    return bool(get_credential_model().objects.filter(user=user, confirmed=True).exists())


def mfa_is_enrolled(*, user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether the user has a confirmed authenticator app (recovery codes alone do not count)."""
    return bool(TOTPDevice.objects.filter(user=user, confirmed=True).exists())  # django-otp is untyped
