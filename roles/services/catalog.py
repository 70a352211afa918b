"""The role catalog: custom roles and their owners."""

from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from guardian.shortcuts import assign_perm, remove_perm

from accounts.models import User
from audit.services import audit_record
from common.text import clean_text

from ..models import PendingChange, Role, RoleSettings
from ..two_person import approval_details, role_change_intercept
from .assignments import _require_perm

# Object permissions a role's owners get on that role (delegated administration).
OWNER_PERMISSIONS = ("manage_eligible_assignments", "approve_activation", "review_access")


def role_create(
    *,
    actor: User | None,
    name: str,
    kind: str = Role.Kind.APP,
    description: str = "",
    template_id: str = "",
    privileged: bool = True,
    tier: str = Role.Tier.HIGH,
) -> Role:
    """Add a custom role to the catalog (with default settings)."""
    _require_perm(actor, "roles.add_role", attempted="role_create")
    name = clean_text(name, field="name", required=True, max_length=200)
    if kind not in Role.Kind.values or tier not in Role.Tier.values:
        raise ValidationError("Unknown role kind or tier.")
    if kind == Role.Kind.GROUP:
        raise ValidationError({"kind": "A group's roles come from governing the group (Govern a group)."})
    with transaction.atomic():
        if Role.objects.filter(name__iexact=name).exists():
            raise ValidationError({"name": f"A role named “{name}” already exists."})
        role = Role.objects.create(
            name=name,
            kind=kind,
            description=clean_text(description, field="description"),
            template_id=template_id,
            privileged=privileged,
            tier=tier,
        )
        RoleSettings.objects.create(role=role)
        audit_record(
            action="role.created",
            actor=actor,
            target=role,
            role=role,
            details={"after": {"name": name, "kind": kind, "tier": tier, "privileged": privileged}},
        )
    return role


def role_update(
    *,
    actor: User | None,
    role: Role,
    changes: dict[str, Any],
    approved_change: PendingChange | None = None,
) -> Role | PendingChange:
    """Change a role's descriptive fields (name, description, tier, privileged). Un-marking a
    privileged role waits for a second PIM Administrator (roles.two_person)."""
    _require_perm(actor, "roles.change_role", attempted="role_update")
    allowed = {"name", "description", "tier", "privileged"}
    if set(changes) - allowed:
        raise ValidationError(f"Only {', '.join(sorted(allowed))} can be changed.")
    with transaction.atomic():
        role = Role.objects.select_for_update().get(pk=role.pk)
        before = {field: getattr(role, field) for field in changes}
        if "name" in changes:
            changes["name"] = clean_text(changes["name"], field="name", required=True, max_length=200)
            if Role.objects.filter(name__iexact=changes["name"]).exclude(pk=role.pk).exists():
                raise ValidationError({"name": f"A role named “{changes['name']}” already exists."})
        if "description" in changes:
            changes["description"] = clean_text(changes["description"], field="description")
        if "tier" in changes and changes["tier"] not in Role.Tier.values:
            raise ValidationError({"tier": "Unknown tier."})
        if not approved_change and (
            pending := role_change_intercept(actor=actor, role=role, changes=changes)
        ):
            return pending  # the two-person rule: applied when a second PIM Administrator approves
        for field, value in changes.items():
            setattr(role, field, value)
        role.save(update_fields=list(changes))
        diff = {f: {"before": before[f], "after": changes[f]} for f in changes if before[f] != changes[f]}
        details = {"changes": diff, **approval_details(approved_change)}
        audit_record(action="role.changed", actor=actor, target=role, role=role, details=details)
    return role


def role_owner_add(*, actor: User | None, role: Role, user: User) -> None:
    """Make the user an owner: they manage the role's eligibilities and approve and review it."""
    _require_perm(actor, "roles.change_role", attempted="role_owner_add")
    with transaction.atomic():
        Role.objects.select_for_update().get(pk=role.pk)
        if role.owners.filter(pk=user.pk).exists():
            raise ValidationError(f"{user} already owns {role}.")
        role.owners.add(user)
        for codename in OWNER_PERMISSIONS:
            assign_perm(f"roles.{codename}", user, role)
        audit_record(action="role.owner_added", actor=actor, target=user, role=role)


def role_owner_remove(*, actor: User | None, role: Role, user: User) -> None:
    _require_perm(actor, "roles.change_role", attempted="role_owner_remove")
    with transaction.atomic():
        Role.objects.select_for_update().get(pk=role.pk)
        if not role.owners.filter(pk=user.pk).exists():
            raise ValidationError(f"{user} does not own {role}.")
        role.owners.remove(user)
        for codename in OWNER_PERMISSIONS:
            remove_perm(f"roles.{codename}", user, role)
        audit_record(action="role.owner_removed", actor=actor, target=user, role=role)
