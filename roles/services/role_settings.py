"""Role settings: a role's policy for activations and assignments, and who approves."""

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import DirectoryGroup, User
from audit.services import audit_record
from common.db import retry_on_deadlock
from common.text import clean_text

from .. import notification_matrix
from ..models import AuthenticationStrength, PendingChange, Role, RoleSettings
from ..selectors import pim_administrators
from ..signals import role_settings_changed
from ..two_person import approval_details, settings_change_intercept
from .assignments import _require_perm

SETTINGS_FIELDS = (
    "activation_max_duration",
    "require_mfa",
    "activation_authentication_strength",
    "approval_authentication_strength",
    "require_justification",
    "require_ticket",
    "require_approval",
    "approvals_required",
    "approval_timeout",
    "eligible_allow_permanent",
    "eligible_max_duration",
    "active_allow_permanent",
    "active_max_duration",
    "active_require_mfa",
    "active_require_justification",
    *notification_matrix.FIELDS,
)


@retry_on_deadlock
def role_settings_update(
    *,
    actor: User | None,
    role: Role,
    changes: dict[str, Any],
    approvers: list[User] | None = None,
    approver_groups: list[DirectoryGroup] | None = None,
    approved_change: PendingChange | None = None,
) -> RoleSettings | PendingChange:
    """Change a role's policy; the audit event carries the before/after diff. Loosening a
    privileged role's policy waits for a second PIM Administrator (roles.two_person). A save
    that changes nothing (the same values, the same approvers) writes nothing and no event."""
    _require_perm(actor, "roles.change_rolesettings", attempted="role_settings_update")
    unknown = set(changes) - set(SETTINGS_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown role settings: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        role_settings = RoleSettings.objects.select_for_update().get(role=role)
        before = _settings_snapshot(role_settings)
        for field, value in changes.items():
            setattr(role_settings, field, value)
        for name in notification_matrix.ADDITIONAL_FIELDS:
            if name in changes:
                text = clean_text(changes[name] or "", field=name)
                setattr(role_settings, name, notification_matrix.recipients_clean(text, field_name=name))
        proposed = _settings_snapshot(role_settings, approvers=approvers, approver_groups=approver_groups)
        if (
            proposed == before
            and not approved_change
            and _same_people(role_settings, approvers, approver_groups)
        ):
            return role_settings  # nothing changes: nothing to save, check or record
        role_settings_validate(role_settings, approvers=approvers, approver_groups=approver_groups)
        if not approved_change and (
            pending := settings_change_intercept(
                actor=actor, proposed=role_settings, approvers=approvers, approver_groups=approver_groups
            )
        ):
            return pending  # the two-person rule: applied when a second PIM Administrator approves
        role_settings.save()
        if approvers is not None:
            role_settings.approvers.set(approvers)
        if approver_groups is not None:
            role_settings.approver_groups.set(approver_groups)
        after = _settings_snapshot(role_settings)
        diff = {
            key: {"before": before[key], "after": after[key]} for key in after if before[key] != after[key]
        }
        details = {"changes": diff, **approval_details(approved_change)}
        audit_record(action="role_settings.changed", actor=actor, target=role, role=role, details=details)
        role_settings_changed.send(sender=RoleSettings, role=role)
    return role_settings


def _same_people(
    role_settings: RoleSettings,
    approvers: Iterable[User] | None,
    approver_groups: Iterable[DirectoryGroup] | None,
) -> bool:
    """Whether the approvers and approver groups given (None: unchanged) are the stored ones."""
    pairs = ((approvers, role_settings.approvers), (approver_groups, role_settings.approver_groups))
    return all(
        wanted is None or {obj.pk for obj in wanted} == set(stored.values_list("pk", flat=True))
        for wanted, stored in pairs
    )


def _settings_snapshot(
    role_settings: RoleSettings,
    *,
    approvers: Iterable[User] | None = None,
    approver_groups: Iterable[DirectoryGroup] | None = None,
) -> dict[str, Any]:
    """The settings as the audit event records them; approvers and approver_groups, when
    given, stand in for the stored ones (a proposal not saved yet)."""
    snapshot = {field: getattr(role_settings, field) for field in SETTINGS_FIELDS}
    for field, value in snapshot.items():
        if isinstance(value, timedelta):
            snapshot[field] = int(value.total_seconds())
    snapshot["approvers"] = sorted(
        role_settings.approvers.values_list("username", flat=True)
        if approvers is None
        else [user.username for user in approvers]
    )
    snapshot["approver_groups"] = sorted(
        role_settings.approver_groups.values_list("name", flat=True)
        if approver_groups is None
        else [group.name for group in approver_groups]
    )
    return snapshot


def _validate_settings(role_settings: RoleSettings) -> None:
    errors: dict[str, Any] = {}
    if not timedelta(minutes=30) <= role_settings.activation_max_duration <= timedelta(hours=24):
        errors["activation_max_duration"] = (
            "The activation maximum duration must be between 30 minutes and 24 hours."
        )
    if not 1 <= role_settings.approvals_required <= 10:
        errors["approvals_required"] = "Between 1 and 10 approvals can be required."
    if not timedelta(hours=1) <= role_settings.approval_timeout <= timedelta(days=14):
        errors["approval_timeout"] = "The approval timeout must be between 1 hour and 14 days."
    for field in ("eligible_max_duration", "active_max_duration"):
        if (
            not django_settings.PIM_MIN_ASSIGNMENT_DURATION
            <= getattr(role_settings, field)
            <= timedelta(days=3650)
        ):
            errors[field] = "The maximum assignment duration must be between 5 minutes and 10 years."
    for field in ("activation_authentication_strength", "approval_authentication_strength"):
        if getattr(role_settings, field) not in AuthenticationStrength.values:
            errors[field] = "Choose any MFA or phishing-resistant (passkey only)."
    if (
        role_settings.activation_authentication_strength == AuthenticationStrength.PHISHING_RESISTANT
        and not role_settings.require_mfa
    ):
        errors["activation_authentication_strength"] = (
            "A phishing-resistant activation needs MFA on activation: turn Require MFA on."
        )
    for name in notification_matrix.ADDITIONAL_FIELDS:
        try:
            notification_matrix.recipients_clean(getattr(role_settings, name), field_name=name)
        except ValidationError as error:
            errors.update(error.message_dict)
    if errors:
        raise ValidationError(errors)


def role_approver_candidates(
    role_settings: RoleSettings,
    *,
    approvers: Iterable[User] | None = None,
    approver_groups: Iterable[DirectoryGroup] | None = None,
) -> set[User]:
    """Who could approve activations of the role: the named approvers and approver groups'
    members; failing those the role's owners; failing those the PIM Administrators."""
    approvers = role_settings.approvers.all() if approvers is None else approvers
    approver_groups = role_settings.approver_groups.all() if approver_groups is None else approver_groups
    named = {user for user in approvers if user.is_active}
    named |= set(User.objects.filter(directory_groups__in=list(approver_groups), is_active=True))
    if named:
        return named
    owners = set(role_settings.role.owners.filter(is_active=True))
    if owners:
        return owners
    return set(pim_administrators())


def role_approvers_explained(
    role_settings: RoleSettings,
    *,
    require_approval: bool | None = None,
    approvers: Iterable[User] | None = None,
    approver_groups: Iterable[DirectoryGroup] | None = None,
) -> str:
    """One sentence for the settings editor: who approves activations of the role, with the
    fallback spelled out (the same rule as role_approver_candidates)."""
    approvers = role_settings.approvers.all() if approvers is None else list(approvers)
    approver_groups = (
        role_settings.approver_groups.all() if approver_groups is None else list(approver_groups)
    )
    named = {user for user in approvers if user.is_active}
    named |= set(User.objects.filter(directory_groups__in=list(approver_groups), is_active=True))
    if named:
        source = "the named approvers"
        people = named
    elif owners := set(role_settings.role.owners.filter(is_active=True)):
        source = "nobody is named, so the role's owners"
        people = owners
    else:
        source = "nobody is named and the role has no owners, so the PIM Administrators"
        people = set(pim_administrators())
    names = ", ".join(sorted(str(person) for person in people)) or "nobody"
    required = role_settings.require_approval if require_approval is None else require_approval
    if not required:
        return (
            f"Approval is off: activations need no approval (if it were on, {source} would approve: {names})."
        )
    return f"Who approves this role: {source}: {names}."


def role_settings_validate(
    role_settings: RoleSettings,
    *,
    approvers: Iterable[User] | None = None,
    approver_groups: Iterable[DirectoryGroup] | None = None,
) -> None:
    """The policy's own consistency (also used by forms to show errors next to fields)."""
    _validate_settings(role_settings)
    if role_settings.require_approval:
        candidates = role_approver_candidates(
            role_settings, approvers=approvers, approver_groups=approver_groups
        )
        if len(candidates) < role_settings.approvals_required:
            raise ValidationError(
                {
                    "require_approval": (
                        f"{role_settings.approvals_required} approval(s) are required but only "
                        f"{len(candidates)} person(s) could approve: name more approvers first."
                    )
                }
            )
