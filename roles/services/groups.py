"""PIM for Groups: a directory group governed by the portal becomes two roles, "Member of X"
and "Owner of X" (Role.Kind.GROUP), each with its own settings. Everything else (eligibility,
activation, approval, extension, expiry, reviews, the outbox to Entra) treats them as roles.

Governing and ungoverning are the only ways those roles come and go, each one audited change.
"""

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import ProtectedError, Q

from accounts.models import DirectoryGroup, User
from audit.services import audit_record

from ..models import ActiveAssignment, EligibleAssignment, Role, RoleSettings
from .assignments import _require_perm

ACCESS_NAMES = {Role.GroupAccess.MEMBER: "Member of", Role.GroupAccess.OWNER: "Owner of"}


def group_role_name(group: DirectoryGroup, access: str) -> str:
    return f"{ACCESS_NAMES[Role.GroupAccess(access)]} {group.name}"[:200]


def group_govern(*, actor: User | None, group: DirectoryGroup) -> list[Role]:
    """Govern a synced directory group: create its member and owner roles (default, strict
    settings: MFA and justification to activate, no permanent assignments). Idempotent for a
    group already governed (returns its roles, records nothing)."""
    _require_perm(actor, "roles.add_role", attempted="group_govern")
    with transaction.atomic():
        group = DirectoryGroup.objects.select_for_update().get(pk=group.pk)
        if not group.external_id:
            raise ValidationError(
                f"The group {group.name} is not linked to Microsoft Entra ID (no object id): "
                "only a synced directory group can be governed."
            )
        existing = {role.group_access: role for role in Role.objects.filter(governed_group=group)}
        created = []
        for access in Role.GroupAccess.values:
            if access in existing:
                continue
            name = group_role_name(group, access)
            if Role.objects.filter(name__iexact=name).exists():
                raise ValidationError({"name": f"A role named “{name}” already exists."})
            role = Role.objects.create(
                name=name,
                kind=Role.Kind.GROUP,
                description=f"{access.title()} of the Entra group {group.name} (PIM for Groups).",
                privileged=True,
                tier=Role.Tier.HIGH,
                governed_group=group,
                group_access=access,
            )
            RoleSettings.objects.create(role=role)
            created.append(role)
            existing[access] = role
        if created:
            audit_record(
                action="group.governed",
                actor=actor,
                target=group,
                details={
                    "external_id": group.external_id,
                    "roles": {role.group_access: str(role.pk) for role in created},
                },
            )
            for role in created:
                audit_record(
                    action="role.created",
                    actor=actor,
                    target=role,
                    role=role,
                    details={
                        "after": {"name": role.name, "kind": role.kind, "group_access": role.group_access}
                    },
                )
    return [existing[access] for access in Role.GroupAccess.values]


def group_ungovern(*, actor: User | None, group: DirectoryGroup) -> None:
    """Stop governing a group: remove its two roles. Refused while any eligible or active
    assignment of them is open (end those first), and when the roles have a history the
    catalog must keep (requests, reviews): the audit log keeps what happened either way."""
    _require_perm(actor, "roles.change_role", attempted="group_ungovern")
    with transaction.atomic():
        group = DirectoryGroup.objects.select_for_update().get(pk=group.pk)
        roles = list(Role.objects.select_for_update().filter(governed_group=group).order_by("pk"))
        if not roles:
            raise ValidationError(f"The group {group.name} is not governed.")
        still_open = Q(role__in=roles, ended_at__isnull=True)
        open_count = (
            EligibleAssignment.objects.filter(still_open).count()
            + ActiveAssignment.objects.filter(still_open).count()
        )
        if open_count:
            raise ValidationError(
                f"{group.name} still has {open_count} open eligible or active assignment(s) of its "
                "member and owner roles: remove them first."
            )
        names = [role.name for role in sorted(roles, key=lambda role: role.group_access)]
        try:
            with transaction.atomic():
                for role in roles:
                    role.delete()  # its settings go with it (CASCADE)
        except ProtectedError:
            # Past assignments, requests or reviews of the roles: history the catalog keeps.
            raise ValidationError(
                f"The roles of {group.name} have a history (past assignments, requests or reviews): "
                "they stay in the catalog and the group stays governed."
            ) from None
        audit_record(action="group.ungoverned", actor=actor, target=group, details={"roles": names})
