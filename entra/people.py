"""Importing people: users (with their managers) and role-assignable groups with their
members. See entra.sync for the rules every import step follows."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import validate_email
from django.db import transaction

from accounts.models import DirectoryGroup, User
from accounts.services import (
    group_member_add,
    group_member_remove,
    group_update,
    user_create,
    user_deactivate,
    user_update,
)
from audit.services import audit_record
from common.text import clean_text

from .client import GraphClient
from .sync import SOURCE, Tally, apply_each, refusal_message

USER_SELECT = "id,displayName,userPrincipalName,mail,accountEnabled"
GROUP_SELECT = "id,displayName,description"
DISABLED_REASON = "Account disabled in Microsoft Entra ID (sync)."
DELETED_REASON = "No longer in Microsoft Entra ID (sync)."


# --- Users ---------------------------------------------------------------------------------------


def import_users(graph: GraphClient, tally: Tally) -> dict[str, str]:
    """Create, update and deactivate users, keyed on their object id alone (never the UPN: a
    same-named local account is a conflict, not merged); their managers' object ids for the
    next step.

    Users the listing no longer has are deactivated, only after a complete listing (a failed
    page raises before that)."""
    known = {user.external_id: user for user in User.objects.exclude(external_id="")}
    managers: dict[str, str] = {}
    params = {"$select": USER_SELECT, "$expand": "manager($select=id)", "$top": "999"}
    for item in graph.all("users", params=params):
        object_id = str(item.get("id") or "")
        if not object_id:
            continue
        managers[object_id] = str((item.get("manager") or {}).get("id") or "")
        label = str(item.get("userPrincipalName") or object_id)
        apply_each(tally, "users", label, _user_apply, object_id, item, known.get(object_id))
    for object_id, user in known.items():
        if object_id not in managers and user.is_active:
            apply_each(tally, "users", user.username, _user_deactivate, user, DELETED_REASON)
    return managers


def _user_apply(object_id: str, item: dict, user: User | None) -> str:
    upn = str(item.get("userPrincipalName") or "").strip()
    if not upn or len(upn) > 150:
        raise ValidationError("The user has no usable userPrincipalName (at most 150 characters).")
    display_name = clean_text(item.get("displayName"), field="display_name", max_length=256)
    email = _email(item.get("mail"))
    enabled = item.get("accountEnabled") is not False
    if user is None:
        _user_conflict_check(object_id, upn)
        _user_create(object_id, upn, display_name, email, enabled)
        return "created"
    outcome = "unchanged"
    if not enabled and user.is_active:
        # First, so a refused profile change never leaves a disabled account usable.
        _user_deactivate(user, DISABLED_REASON)
        outcome = "deactivated"
    changes = {
        field: value
        for field, value in (("display_name", display_name), ("email", email))
        if getattr(user, field) != value
    }
    renamed = upn != user.username
    if changes:
        user_update(actor=None, user=user, changes=changes)
    if renamed:
        _user_rename(user, upn)
    if outcome == "unchanged" and (changes or renamed):
        outcome = "updated"
    return outcome


def _email(value) -> str:
    email = str(value or "").strip()
    if email:
        try:
            validate_email(email)
        except ValidationError:
            raise ValidationError(f"“{email[:100]}” is not an email address.") from None
    return email


def _user_conflict_check(object_id: str, upn: str) -> None:
    """A portal account with the same sign-in name but not this object id is never merged:
    names are reused (a leaver's UPN given to a newcomer), object ids are not. The sync reports
    it (in the run's errors, every run) and leaves both alone until an administrator sorts it
    out."""
    user = User.objects.filter(username__iexact=upn).first()
    if user is None:
        return
    if user.external_id:
        raise ValidationError(f"The username {upn} belongs to another directory object.")
    raise ValidationError(
        f"Conflict: the local account {user.username} has the same name as directory user {object_id} "
        "and is not linked to it; it was not merged. Rename or remove the local account, then sync again."
    )


def _user_create(object_id: str, upn: str, display_name: str, email: str, enabled: bool) -> None:
    # No usable password: signs in only once an administrator gives it one.
    user_create(
        actor=None,
        username=upn,
        display_name=display_name,
        email=email,
        external_id=object_id,
        is_active=enabled,
        origin={"source": SOURCE, "external_id": object_id},
    )


def _user_rename(user: User, upn: str) -> None:
    if User.objects.filter(username__iexact=upn).exclude(pk=user.pk).exists():
        raise ValidationError(f"Cannot rename {user.username} to {upn}: that username is taken.")
    with transaction.atomic():
        before = user.username
        User.objects.filter(pk=user.pk).update(username=upn)
        user.username = upn
        audit_record(
            action="user.changed",
            target=user,
            details={"source": SOURCE, "changes": {"username": {"before": before, "after": upn}}},
        )


def _user_deactivate(user: User, reason: str) -> str:
    user_deactivate(actor=None, user=user, reason=reason)
    user.is_active = False
    return "deactivated"


def import_managers(managers: dict[str, str], tally: Tally) -> None:
    users = {user.external_id: user for user in User.objects.exclude(external_id="")}
    for object_id, manager_id in managers.items():
        user = users.get(object_id)
        if user is not None:  # else its own import failed, already counted
            apply_each(tally, "managers", user.username, _manager_apply, user, manager_id, users)


def _manager_apply(user: User, manager_id: str, users: dict[str, User]) -> str:
    manager = users.get(manager_id) if manager_id else None
    if manager_id and manager is None:
        raise ValidationError(f"The manager {manager_id} is not an imported user.")
    if user.manager_id == (manager.pk if manager else None):
        return "unchanged"
    if manager is not None and not manager.is_active:
        return "skipped"  # a deactivated manager approves nothing: keep what the portal has
    user_update(actor=None, user=user, changes={"manager": manager})
    return "updated"


# --- Role-assignable groups ------------------------------------------------------------------


def import_groups(graph: GraphClient, tally: Tally) -> None:
    known = {group.external_id: group for group in DirectoryGroup.objects.exclude(external_id="")}
    users = {user.external_id: user for user in User.objects.exclude(external_id="")}
    params = {"$filter": "isAssignableToRole eq true", "$select": GROUP_SELECT, "$count": "true"}
    for item in graph.all("groups", params=params, headers={"ConsistencyLevel": "eventual"}):
        object_id = str(item.get("id") or "")
        name = str(item.get("displayName") or object_id)
        try:
            group, outcome = _group_apply(object_id, item, known.get(object_id))
        except (ValidationError, PermissionDenied) as error:
            tally.error("groups", name, refusal_message(error))
            continue
        tally.count("groups", outcome)
        members = {
            str(member.get("id"))
            for member in graph.all(f"groups/{object_id}/members", params={"$select": "id"})
            if str(member.get("@odata.type", "#microsoft.graph.user")).endswith(".user")
        }
        _members_apply(group, members, users, tally)


def _group_apply(object_id: str, item: dict, group: DirectoryGroup | None) -> tuple[DirectoryGroup, str]:
    name = clean_text(item.get("displayName"), field="name", required=True, max_length=256)
    description = clean_text(item.get("description"), field="description")
    if group is None:
        group = DirectoryGroup.objects.filter(name__iexact=name).first()
        if group is not None and group.external_id:
            raise ValidationError(f"A group named “{name}” belongs to another directory object.")
        with transaction.atomic():
            if group is None:
                group = DirectoryGroup.objects.create(
                    name=name, description=description, external_id=object_id
                )
                details = {"source": SOURCE, "external_id": object_id, "after": {"name": name}}
                audit_record(action="group.created", target=group, details=details)
                return group, "created"
            DirectoryGroup.objects.filter(pk=group.pk).update(external_id=object_id)
            group.external_id = object_id
            audit_record(action="entra.group_linked", target=group, details={"external_id": object_id})
        outcome = "linked"
    else:
        outcome = "unchanged"
    changes = {f: v for f, v in (("name", name), ("description", description)) if getattr(group, f) != v}
    if changes:
        group = group_update(actor=None, group=group, changes=changes)
        outcome = "updated" if outcome == "unchanged" else outcome
    return group, outcome


def _members_apply(group: DirectoryGroup, member_ids: set[str], users: dict[str, User], tally: Tally) -> None:
    current = {user.pk: user for user in group.members.all()}
    wanted = {users[object_id].pk: users[object_id] for object_id in member_ids if object_id in users}
    for object_id in member_ids - set(users):
        tally.error("members", f"{group.name}: {object_id}", "The member is not an imported user.")
    for pk, user in wanted.items():
        if pk in current:
            tally.count("members", "unchanged")
        elif not user.is_active:
            tally.count("members", "skipped")  # deactivated accounts join no group
        else:
            apply_each(tally, "members", f"{group.name}: {user.username}", _member_add, group, user)
    for pk, user in current.items():
        if pk not in wanted:
            apply_each(tally, "members", f"{group.name}: {user.username}", _member_remove, group, user)


def _member_add(group: DirectoryGroup, user: User) -> str:
    group_member_add(actor=None, group=group, user=user)
    return "added"


def _member_remove(group: DirectoryGroup, user: User) -> str:
    group_member_remove(actor=None, group=group, user=user)
    return "removed"
