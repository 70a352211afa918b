"""Groups and their members. Members inherit a group's eligible and active assignments:
membership changes are privileged changes, audited like assignments."""

from collections.abc import Sequence
from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record
from common.db import retry_on_deadlock
from common.text import clean_text

from ..hooks import group_member_leaving
from ..models import DirectoryGroup, User
from .shared import AccountError, _require_perm


def group_create(*, actor: User | None, name: str, description: str = "") -> DirectoryGroup:
    """Add a (portal-local) group with no members."""
    _require_perm(
        actor, "accounts.add_directorygroup", "You may not create groups.", attempted="group_create"
    )
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


def group_update(*, actor: User | None, group: DirectoryGroup, changes: dict[str, Any]) -> DirectoryGroup:
    """Rename a group or change its description."""
    _require_perm(
        actor, "accounts.change_directorygroup", "You may not change groups.", attempted="group_update"
    )
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
    _require_perm(
        actor,
        "accounts.change_directorygroup",
        "You may not change group memberships.",
        attempted="group_member_add",
    )
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


@retry_on_deadlock
def group_member_remove(*, actor: User | None, group: DirectoryGroup, user: User) -> None:
    """Take a person out of a group: they lose what the group holds, and activations they made
    of the group's eligibilities end now. Refused (LockoutError) if that would leave a
    lockout-protected role without its last (permanent) holder."""
    _require_perm(
        actor,
        "accounts.change_directorygroup",
        "You may not change group memberships.",
        attempted="group_member_remove",
    )
    now = timezone.now()
    with transaction.atomic():
        group = DirectoryGroup.objects.select_for_update().get(pk=group.pk)
        user = User.objects.get(pk=user.pk)
        if not group.members.filter(pk=user.pk).exists():
            raise AccountError(f"{user} is not a member of {group}.")
        # (django-stubs types the replies as strings; receivers return anything)
        replies: Sequence[tuple[object, object]] = group_member_leaving.send(
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
