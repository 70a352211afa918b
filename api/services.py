"""Services of the API app: personal access tokens and service accounts for the check.

Like every service in the portal, each one is an audited state change in one transaction.
Token secrets never reach the audit log or any log: only their non-secret prefix does.
"""

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from accounts.services import user_create
from audit.refusals import audit_permission_denied
from audit.services import audit_record
from common.text import clean_text
from roles.models import ActiveAssignment, Role
from roles.selectors import portal_role
from roles.services import active_assign

from .models import ApiToken

PIM_ROLE_CHECKER = "pim.checker"
TOKEN_SCHEME = "pim"  # noqa: S105 - the tokens' public scheme prefix
_PREFIX_BYTES = 6  # 12 hex characters: finds the row; not secret
_SECRET_BYTES = 32  # 256 bits


class TokenError(ValidationError):
    """A token change refused for a reason the person can act on."""


def api_token_digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def api_token_parse(raw: str) -> tuple[str, str] | None:
    """The lookup prefix of a well-formed token, and the token; None if it cannot be one."""
    scheme, _, rest = raw.partition("_")
    prefix, _, secret = rest.partition("_")
    if scheme != TOKEN_SCHEME or len(prefix) != 2 * _PREFIX_BYTES or not secret or len(raw) > 200:
        return None
    return prefix, raw


def api_token_matches(token: ApiToken, raw: str) -> bool:
    return hmac.compare_digest(token.key_hash, api_token_digest(raw))


def api_token_create(
    *,
    actor: User | None,
    user: User,
    name: str,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Make a token for the user; returns it with its secret, which is never readable again.

    ``actor`` is the user themself (their profile page) or None (``manage.py api_token``)."""
    if actor is not None and actor.pk != user.pk:
        raise audit_permission_denied(
            actor=actor,
            attempted="api_token_create",
            target=user,
            message="People make API tokens only for themselves.",
        )
    now = now or timezone.now()
    name = clean_text(name, field="name", required=True, max_length=100)
    if user.is_superuser:
        # The break-glass account is for emergencies at the keyboard: a token would be a
        # standing, scriptable superuser credential that outlives the emergency.
        raise audit_permission_denied(
            actor=actor or user,
            attempted="api_token_create",
            target=user,
            message="The break-glass account cannot have API tokens.",
        )
    if not user.is_active:
        raise TokenError(f"{user} is deactivated and cannot have API tokens.")
    if expires_at is not None and expires_at <= now:
        raise TokenError({"expires_at": "The expiry must be in the future."})
    for _ in range(5):  # a clash of random 48-bit prefixes is astronomically rare; retry anyway
        prefix = secrets.token_hex(_PREFIX_BYTES)
        raw = f"{TOKEN_SCHEME}_{prefix}_{secrets.token_urlsafe(_SECRET_BYTES)}"
        try:
            with transaction.atomic():
                token = ApiToken.objects.create(
                    user=user,
                    name=name,
                    prefix=prefix,
                    key_hash=api_token_digest(raw),
                    created_at=now,
                    expires_at=expires_at,
                )
                audit_record(
                    action="api_token.created",
                    actor=actor,
                    target=token,
                    details={"user": user.label, "name": name, "prefix": prefix, "expires_at": expires_at},
                    at=now,
                )
        except IntegrityError:
            continue
        return token, raw
    raise RuntimeError("Could not find a free token prefix.")


def api_token_revoke(*, actor: User | None, token: ApiToken, now: datetime | None = None) -> ApiToken:
    """Revoke a token now: requests made with it are refused from the next one on."""
    if actor is not None and actor.pk != token.user_id:
        raise audit_permission_denied(
            actor=actor,
            attempted="api_token_revoke",
            target=token,
            message="People revoke only their own API tokens.",
        )
    now = now or timezone.now()
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().select_related("user").get(pk=token.pk)
        if token.revoked_at is not None:
            raise TokenError(f"The token “{token.name}” was already revoked.")
        token.revoked_at = now
        token.save(update_fields=["revoked_at"])
        audit_record(
            action="api_token.revoked",
            actor=actor,
            target=token,
            details={"user": token.user.label, "name": token.name, "prefix": token.prefix},
            at=now,
        )
    return token


def api_token_touch(*, token: ApiToken, now: datetime) -> None:
    """Record use, at most once a minute (a conditional update: concurrent requests write once)."""
    if token.last_used_at is not None and (now - token.last_used_at).total_seconds() < 60:
        return
    ApiToken.objects.filter(pk=token.pk, last_used_at=token.last_used_at).update(last_used_at=now)


# --- The step-up window -------------------------------------------------------------------


def api_step_up_open(*, token: ApiToken, factor: str, now: datetime | None = None) -> ApiToken:
    """Open (or renew) the token's step-up window after its holder proved MFA with ``factor``
    (a code or a passkey, checked by the caller through accounts.services): for
    PIM_STEP_UP_WINDOW, decisions and activations made with this token, and only this token,
    need no new code. The latest step-up wins, so a code after a passkey narrows the window
    to what a code allows. Writes ``api.step_up_opened``."""
    now = now or timezone.now()
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().select_related("user").get(pk=token.pk)
        if not token.is_usable(now) or not token.user.is_active:
            raise TokenError("This token is expired or revoked.")
        token.step_up_at, token.step_up_factor = now, factor
        token.save(update_fields=["step_up_at", "step_up_factor"])
        audit_record(
            action="api.step_up_opened",
            actor=token.user,
            target=token,
            details={
                "token": token.name,
                "prefix": token.prefix,
                "factor": factor,
                "expires_at": api_step_up_expires_at(token),
            },
            at=now,
        )
    return token


def api_step_up_expires_at(token: ApiToken) -> datetime | None:
    """When the token's step-up window closes (None: it never opened)."""
    if token.step_up_at is None:
        return None
    return token.step_up_at + settings.PIM_STEP_UP_WINDOW


def api_step_up_challenge_store(
    *, token: ApiToken, state: dict[str, Any], now: datetime | None = None
) -> None:
    """Keep a passkey challenge for the token until it is answered (replacing an older one)."""
    now = now or timezone.now()
    ApiToken.objects.filter(pk=token.pk).update(step_up_challenge=state, step_up_challenge_at=now)


def api_step_up_challenge_take(*, token: ApiToken, now: datetime | None = None) -> dict[str, Any] | None:
    """The token's passkey challenge, taken out (single use: a replayed answer finds none);
    None if there is none or it is older than the browser's time-out for answering."""
    now = now or timezone.now()
    with transaction.atomic():
        row = (
            ApiToken.objects.select_for_update()
            .filter(pk=token.pk)
            .values("step_up_challenge", "step_up_challenge_at")[0]
        )
        ApiToken.objects.filter(pk=token.pk).update(step_up_challenge=None, step_up_challenge_at=None)
    state, issued_at = row["step_up_challenge"], row["step_up_challenge_at"]
    if not state or issued_at is None or now - issued_at > timedelta(seconds=CHALLENGE_SECONDS):
        return None
    return cast(dict[str, Any], state)


# The browser's time-out for answering a passkey challenge (OTP_WEBAUTHN_TIMEOUT_SECONDS), with
# a little slack for the round trip.
CHALLENGE_SECONDS = int(getattr(settings, "OTP_WEBAUTHN_TIMEOUT_SECONDS", 120)) + 30


# --- Service accounts for the authorization check -------------------------------------------


def service_account_ensure(*, username: str) -> tuple[User, bool]:
    """A user for a service that calls the API with a token: no usable password (it cannot
    sign in to the portal) and no MFA device. Returns (user, created)."""
    username = clean_text(username, field="username", required=True, max_length=150)
    with transaction.atomic():
        user = User.objects.select_for_update().filter(username=username).first()
        if user is not None:
            return user, False
        user = user_create(
            actor=None,
            username=username,
            display_name=f"Service account {username}",
            origin={"service_account": True},
        )
    return user, True


def role_checker_grant(*, user: User) -> ActiveAssignment | None:
    """Give the user a permanent active assignment of PIM Role Checker (the api.check_role
    permission), through the same audited service an administrator uses; None if they
    already hold it."""
    role: Role = portal_role(PIM_ROLE_CHECKER)
    now = timezone.now()
    if ActiveAssignment.objects.filter(user=user, role=role, scope="/").current(now).exists():
        return None
    # cast: the two-person rule holds back what people do, never a change with actor None
    return cast(
        ActiveAssignment,
        active_assign(
            actor=None,
            role=role,
            principal=user,
            ends_at=None,
            justification="Service account for the authorization check (manage.py api_token)",
            now=now,
        ),
    )
