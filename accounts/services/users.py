"""People: sign-in records, creation, profile changes, deactivation and reactivation."""

import functools
import zoneinfo
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from common.db import retry_on_deadlock
from common.text import clean_text

from ..hooks import user_deactivated, user_deactivating
from ..models import DirectoryGroup, User
from .shared import AccountError, _require_perm


def user_sign_in_record(*, user: User, method: str = "password") -> None:
    """Audit a sign-in (``method``: password, sso or invitation); a superuser's is the
    break-glass account's and is flagged."""
    now = timezone.now()
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(last_sign_in_at=now)
        action = "auth.break_glass_sign_in" if user.is_superuser else "auth.sign_in"
        audit_record(action=action, actor=user, target=user, at=now, details={"method": method})


def user_sign_in_failure_record(*, username: str, failures: int = 0) -> None:
    """Audit a refused sign-in. ``failures``: how many the account or address has in the
    lockout window; at the limit the event is the lockout (accounts.throttle decides which
    failures are written at all, so that an attacker cannot grow the log without bound)."""
    locked = failures >= settings.AXES_FAILURE_LIMIT
    details: dict[str, Any] = {"username": username}
    if failures:
        details["failures"] = failures
    audit_record(
        action="auth.locked_out" if locked else "auth.sign_in_failed",
        target=username,
        details=details,
        outcome=AuditEvent.Outcome.FAILURE,
    )


def user_create(
    *,
    actor: User | None,
    username: str,
    display_name: str = "",
    email: str = "",
    external_id: str = "",
    is_active: bool = True,
    origin: dict[str, Any] | None = None,
) -> User:
    """Add a person with no usable password (they sign in once an administrator gives them
    one; a service account never does) and no MFA device. ``origin`` says where they come
    from, for the audit event (the directory sync, a service account for the API).

    ``actor`` None is the system."""
    _require_perm(actor, "accounts.add_user", "You may not add people.", attempted="user_create")
    username = clean_text(username, field="username", required=True, max_length=150)
    display_name = clean_text(display_name, field="display_name", max_length=256)
    email = _email_clean(email)
    with transaction.atomic():
        if User.objects.filter(username__iexact=username).exists():
            raise AccountError({"username": f"The username {username} is taken."})
        user = User(
            username=username,
            display_name=display_name,
            email=email,
            external_id=external_id,
            is_active=is_active,
        )
        user.set_unusable_password()
        user.save()
        after = {"username": username, "display_name": display_name, "email": email, "is_active": is_active}
        audit_record(
            action="user.created", actor=actor, target=user, details={**(origin or {}), "after": after}
        )
    return user


# What an administrator may change about a person in the portal; the rest comes from the
# directory (username, external id) or has its own service (deactivation, MFA).
USER_EDITABLE_FIELDS = ("display_name", "email", "manager")

# How far up a management chain is followed when looking for a loop.
_MANAGER_CHAIN_LIMIT = 100


def user_update(*, actor: User | None, user: User, changes: dict[str, Any]) -> User:
    """Change a person's display name, email or manager; the event carries the before/after diff."""
    _require_perm(actor, "accounts.change_user", attempted="user_update")
    unknown = set(changes) - set(USER_EDITABLE_FIELDS)
    if unknown:
        raise AccountError(f"Only {', '.join(USER_EDITABLE_FIELDS)} can be changed here.")
    with transaction.atomic():
        locked = User.objects.select_for_update(no_key=True).get(pk=user.pk)
        cleaned = _user_changes_clean(locked, changes)
        before = {field: _audit_value(getattr(locked, field)) for field in cleaned}
        after = {field: _audit_value(value) for field, value in cleaned.items()}
        diff = {f: {"before": before[f], "after": after[f]} for f in cleaned if before[f] != after[f]}
        if not diff:
            return locked
        for field in diff:
            setattr(locked, field, cleaned[field])
        locked.save(update_fields=list(diff))
        audit_record(action="user.changed", actor=actor, target=locked, details={"changes": diff})
    return locked


def _user_changes_clean(user: User, changes: dict[str, Any]) -> dict[str, Any]:
    cleaned = dict(changes)
    if "display_name" in cleaned:
        cleaned["display_name"] = clean_text(cleaned["display_name"], field="display_name", max_length=256)
    if "email" in cleaned:
        cleaned["email"] = _email_clean(cleaned["email"])
    if cleaned.get("manager") is not None:
        _manager_validate(user, cleaned["manager"])
    return cleaned


def _email_clean(value: str) -> str:
    email = clean_text(value, field="email", max_length=254)
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise AccountError({"email": "Enter a valid email address."}) from None
    return email


def _manager_validate(user: User, manager: User) -> None:
    """An active person, and no loop: walks the chain as stored, not as the caller holds it."""
    if not User.objects.filter(pk=manager.pk, is_active=True).exists():
        raise AccountError({"manager": f"{manager} is deactivated."})
    boss_id: int | None = manager.pk
    for _ in range(_MANAGER_CHAIN_LIMIT):
        if boss_id is None:
            return
        if boss_id == user.pk:
            raise AccountError(
                {"manager": "A person cannot be their own manager, directly or through others."}
            )
        boss_id = User.objects.filter(pk=boss_id).values_list("manager_id", flat=True).first()
    raise AccountError({"manager": "That management chain is too long."})


def _audit_value(value: object) -> object:
    return value.label if isinstance(value, User) else value


@retry_on_deadlock
def user_deactivate(*, actor: User | None, user: User, reason: str) -> User:
    """Deactivate a person: no more sign-ins, every session ends, active roles are revoked.

    ``actor`` None is the system (directory sync)."""
    _require_perm(actor, "accounts.change_user", attempted="user_deactivate")
    reason = _clean_reason(reason)
    with transaction.atomic():
        # Lock the person's groups first (the order group_member_remove uses too): two members
        # of one group leaving at once must not both pass the anti-lockout check. People are
        # locked FOR NO KEY UPDATE: the share locks that audit events and assignments take on
        # a person (foreign keys) then never wait for it (the lock order in roles.services).
        list(DirectoryGroup.objects.select_for_update().filter(members=user).order_by("pk").values_list("pk"))
        locked = User.objects.select_for_update(no_key=True).get(pk=user.pk)
        if not locked.is_active:
            raise AccountError(f"{locked} is already deactivated.")
        now = timezone.now()
        user_deactivating.send(sender=User, user=locked, actor=actor, reason=reason, now=now)
        locked.is_active = False
        # The session hash includes the epoch: every session of the user dies at its next request.
        locked.session_epoch += 1
        locked.save(update_fields=["is_active", "session_epoch"])
        user_deactivated.send(sender=User, user=locked, actor=actor, now=now)
        audit_record(action="user.deactivated", actor=actor, target=locked, details={"reason": reason})
    return locked


def user_reactivate(*, actor: User | None, user: User, reason: str) -> User:
    """Let a deactivated person sign in again (with no roles: those were revoked)."""
    _require_perm(actor, "accounts.change_user", attempted="user_reactivate")
    reason = _clean_reason(reason)
    with transaction.atomic():
        locked = User.objects.select_for_update(no_key=True).get(pk=user.pk)
        if locked.is_active:
            raise AccountError(f"{locked} is already active.")
        locked.is_active = True
        locked.save(update_fields=["is_active"])
        audit_record(action="user.reactivated", actor=actor, target=locked, details={"reason": reason})
    return locked


def _clean_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise AccountError({"reason": "A reason is required."})
    if len(reason) > settings.PIM_MAX_TEXT_LENGTH:
        raise AccountError({"reason": f"The reason is at most {settings.PIM_MAX_TEXT_LENGTH} characters."})
    return reason


def user_break_glass_request_record(*, user: User, method: str, path: str, status: int) -> None:
    """Audit one request of the break-glass account (every one: it is for emergencies only)."""
    audit_record(
        action="auth.break_glass_request",
        actor=user,
        target=user,
        details={"method": method[:10], "path": path[:500], "status": status},
    )


def user_time_zone_set(*, user: User, time_zone: str, detected: bool = False) -> User:
    """Set the time zone the portal shows the person's times in (an IANA name). `detected`:
    the browser's zone recorded on a first visit, which never overrides one already chosen."""
    time_zone = (time_zone or "").strip()
    if time_zone not in time_zones():
        raise AccountError({"time_zone": "Choose a time zone from the list (such as Europe/Paris)."})
    with transaction.atomic():
        locked = User.objects.select_for_update(no_key=True).get(pk=user.pk)
        if locked.time_zone == time_zone or (detected and locked.time_zone):
            return locked
        before = locked.time_zone
        locked.time_zone = time_zone
        locked.save(update_fields=["time_zone"])
        audit_record(
            action="user.time_zone_changed",
            actor=user,
            target=locked,
            details={"before": before, "after": time_zone, "source": "browser" if detected else "person"},
        )
    user.time_zone = time_zone
    return locked


@functools.cache
def time_zones() -> frozenset[str]:
    """The IANA time zone names this system knows (zoneinfo, or the tzdata package)."""
    return frozenset(zoneinfo.available_timezones())
