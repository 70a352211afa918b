"""Account services: sign-in records, profile changes, deactivation, group membership, MFA
enrolment and verification."""

import math
import re
import secrets

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_otp.models import Device
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from audit.models import AuditEvent
from audit.services import audit_record
from common.text import clean_text

from .hooks import group_member_leaving, user_deactivated, user_deactivating
from .models import DirectoryGroup, User


class MfaError(ValidationError):
    """A code was refused: malformed, wrong, already used, throttled, or no device to check."""


class AccountError(ValidationError):
    """The account's current state does not allow the change (e.g. already deactivated)."""


# --- Sign-in ---------------------------------------------------------------------------------


def user_sign_in_record(*, user: User) -> None:
    """Audit a sign-in; a superuser's is the break-glass account's and is flagged."""
    now = timezone.now()
    with transaction.atomic():
        User.objects.filter(pk=user.pk).update(last_sign_in_at=now)
        action = "auth.break_glass_sign_in" if user.is_superuser else "auth.sign_in"
        audit_record(action=action, actor=user, target=user, at=now)


def user_sign_in_failure_record(*, username: str) -> None:
    audit_record(
        action="auth.sign_in_failed",
        target=username,
        details={"username": username},
        outcome=AuditEvent.Outcome.FAILURE,
    )


# --- Creating people ------------------------------------------------------------------------


def user_create(
    *,
    actor: User | None,
    username: str,
    display_name: str = "",
    email: str = "",
    external_id: str = "",
    is_active: bool = True,
    origin: dict | None = None,
) -> User:
    """Add a person with no usable password (they sign in once an administrator gives them
    one; a service account never does) and no MFA device. ``origin`` says where they come
    from, for the audit event (the directory sync, a service account for the API).

    ``actor`` None is the system."""
    _require_perm(actor, "accounts.add_user", "You may not add people.")
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


# --- Profile ---------------------------------------------------------------------------------

# What an administrator may change about a person in the portal; the rest comes from the
# directory (username, external id) or has its own service (deactivation, MFA).
USER_EDITABLE_FIELDS = ("display_name", "email", "manager")
# How far up a management chain is followed when looking for a loop.
_MANAGER_CHAIN_LIMIT = 100


def user_update(*, actor: User | None, user: User, changes: dict) -> User:
    """Change a person's display name, email or manager; the event carries the before/after diff."""
    _require_perm(actor, "accounts.change_user")
    unknown = set(changes) - set(USER_EDITABLE_FIELDS)
    if unknown:
        raise AccountError(f"Only {', '.join(USER_EDITABLE_FIELDS)} can be changed here.")
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
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


def _user_changes_clean(user: User, changes: dict) -> dict:
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
    boss_id = manager.pk
    for _ in range(_MANAGER_CHAIN_LIMIT):
        if boss_id is None:
            return
        if boss_id == user.pk:
            raise AccountError(
                {"manager": "A person cannot be their own manager, directly or through others."}
            )
        boss_id = User.objects.filter(pk=boss_id).values_list("manager_id", flat=True).first()
    raise AccountError({"manager": "That management chain is too long."})


def _audit_value(value):
    return value.label if isinstance(value, User) else value


# --- Deactivation ----------------------------------------------------------------------------


def user_deactivate(*, actor: User | None, user: User, reason: str) -> User:
    """Deactivate a person: no more sign-ins, every session ends, active roles are revoked.

    ``actor`` None is the system (directory sync)."""
    _require_perm(actor, "accounts.change_user")
    reason = _clean_reason(reason)
    with transaction.atomic():
        # Lock the person's groups first (the order group_member_remove uses too): two members
        # of one group leaving at once must not both pass the anti-lockout check.
        list(DirectoryGroup.objects.select_for_update().filter(members=user).order_by("pk").values_list("pk"))
        locked = User.objects.select_for_update().get(pk=user.pk)
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
    _require_perm(actor, "accounts.change_user")
    reason = _clean_reason(reason)
    with transaction.atomic():
        locked = User.objects.select_for_update().get(pk=user.pk)
        if locked.is_active:
            raise AccountError(f"{locked} is already active.")
        locked.is_active = True
        locked.save(update_fields=["is_active"])
        audit_record(action="user.reactivated", actor=actor, target=locked, details={"reason": reason})
    return locked


# --- Groups ----------------------------------------------------------------------------------
# Members inherit a group's eligible and active assignments: membership changes are privileged
# changes, audited like assignments.


def group_create(*, actor: User | None, name: str, description: str = "") -> DirectoryGroup:
    """Add a (portal-local) group with no members."""
    _require_perm(actor, "accounts.add_directorygroup", "You may not create groups.")
    name = clean_text(name, field="name", required=True, max_length=256)
    description = clean_text(description, field="description")
    with transaction.atomic():
        if DirectoryGroup.objects.filter(name__iexact=name).exists():
            raise AccountError({"name": f"A group named “{name}” already exists."})
        try:
            with transaction.atomic():
                group = DirectoryGroup.objects.create(name=name, description=description)
        except IntegrityError:
            raise AccountError({"name": f"A group named “{name}” already exists."}) from None
        audit_record(
            action="group.created",
            actor=actor,
            target=group,
            details={"after": {"name": name, "description": description}},
        )
    return group


def group_update(*, actor: User | None, group: DirectoryGroup, changes: dict) -> DirectoryGroup:
    """Rename a group or change its description."""
    _require_perm(actor, "accounts.change_directorygroup", "You may not change groups.")
    if set(changes) - {"name", "description"}:
        raise AccountError("Only the name and description of a group can be changed here.")
    cleaned = {}
    if "name" in changes:
        cleaned["name"] = clean_text(changes["name"], field="name", required=True, max_length=256)
    if "description" in changes:
        cleaned["description"] = clean_text(changes["description"], field="description")
    with transaction.atomic():
        locked = DirectoryGroup.objects.select_for_update().get(pk=group.pk)
        name = cleaned.get("name")
        if name and DirectoryGroup.objects.filter(name__iexact=name).exclude(pk=locked.pk).exists():
            raise AccountError({"name": f"A group named “{name}” already exists."})
        diff = {
            field: {"before": getattr(locked, field), "after": value}
            for field, value in cleaned.items()
            if getattr(locked, field) != value
        }
        if not diff:
            return locked
        for field in diff:
            setattr(locked, field, cleaned[field])
        locked.save(update_fields=list(diff))
        audit_record(action="group.changed", actor=actor, target=locked, details={"changes": diff})
    return locked


def group_member_add(*, actor: User | None, group: DirectoryGroup, user: User) -> None:
    """Add a person to a group: from now on they hold what the group holds."""
    _require_perm(actor, "accounts.change_directorygroup", "You may not change group memberships.")
    with transaction.atomic():
        group = DirectoryGroup.objects.select_for_update().get(pk=group.pk)
        user = User.objects.get(pk=user.pk)
        if not user.is_active:
            raise AccountError(f"{user} is deactivated and cannot join groups.")
        if group.members.filter(pk=user.pk).exists():
            raise AccountError(f"{user} is already a member of {group}.")
        group.members.add(user)
        audit_record(
            action="group.member_added",
            actor=actor,
            target=user,
            details={"group": group.name, "group_id": group.pk},
        )


def group_member_remove(*, actor: User | None, group: DirectoryGroup, user: User) -> None:
    """Take a person out of a group: they lose what the group holds, and activations they made
    of the group's eligibilities end now. Refused (LockoutError) if that would leave a
    lockout-protected role without its last (permanent) holder."""
    _require_perm(actor, "accounts.change_directorygroup", "You may not change group memberships.")
    now = timezone.now()
    with transaction.atomic():
        group = DirectoryGroup.objects.select_for_update().get(pk=group.pk)
        user = User.objects.get(pk=user.pk)
        if not group.members.filter(pk=user.pk).exists():
            raise AccountError(f"{user} is not a member of {group}.")
        replies = group_member_leaving.send(
            sender=DirectoryGroup, group=group, user=user, actor=actor, now=now
        )
        ended = sum(reply for _, reply in replies if isinstance(reply, int))
        group.members.remove(user)
        audit_record(
            action="group.member_removed",
            actor=actor,
            target=user,
            details={"group": group.name, "group_id": group.pk, "activations_ended": ended},
            at=now,
        )


def _require_perm(actor: User | None, perm: str, message: str = "You may not change this account.") -> None:
    if actor is not None and not actor.has_perm(perm):
        raise PermissionDenied(message)


def _clean_reason(reason: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise AccountError({"reason": "A reason is required."})
    if len(reason) > settings.PIM_MAX_TEXT_LENGTH:
        raise AccountError({"reason": f"The reason is at most {settings.PIM_MAX_TEXT_LENGTH} characters."})
    return reason


# --- MFA codes -------------------------------------------------------------------------------

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


# --- MFA enrolment and recovery codes --------------------------------------------------------

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
        audit_record(action="mfa.device_removed", actor=user, target=user, details={"device": device.name})


def mfa_recovery_codes_regenerate(*, user: User) -> list[str]:
    """Replace the user's recovery codes with new ones; the old ones stop working."""
    with transaction.atomic():
        codes = _recovery_codes_replace(user)
        audit_record(
            action="mfa.recovery_codes_regenerated", actor=user, target=user, details={"count": len(codes)}
        )
    return codes


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
