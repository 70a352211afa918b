"""Importing eligibilities: Entra's current eligibility instances mirrored as the portal's
eligible assignments, through the roles services. See entra.sync for the rules every import
step follows."""

from collections.abc import Callable
from typing import cast

from django.core.exceptions import ValidationError
from django.db import transaction

from accounts.models import DirectoryGroup, User
from audit.services import audit_record
from roles.directory_services import directory_changes_applying
from roles.models import DirectoryOperation, EligibleAssignment, Role
from roles.scopes import scope_validate
from roles.services import eligible_assign, eligible_remove, eligible_update

from .client import GraphClient
from .models import ImportedEligibility
from .sync import Tally, apply_each, parse_time

ELIGIBILITIES = "roleManagement/directory/roleEligibilityScheduleInstances"
IMPORTED = "Imported from Microsoft Entra ID."


def import_eligibilities(graph: GraphClient, tally: Tally, now) -> None:
    """Mirror Entra's current eligibilities: create, adopt (a matching portal eligibility),
    change the end, and end the imported ones Entra no longer has (after a complete listing)."""
    maps = {
        "roles": {role.template_id.lower(): role for role in Role.objects.filter(kind=Role.Kind.ENTRA)},
        "users": {user.external_id: user for user in User.objects.exclude(external_id="")},
        "groups": {group.external_id: group for group in DirectoryGroup.objects.exclude(external_id="")},
    }
    links = {
        (link.principal_id, link.role_template_id, link.directory_scope): link
        for link in ImportedEligibility.objects.select_related("eligible__role").filter(
            eligible__role__kind=Role.Kind.ENTRA  # Azure roles' come from ARM (entra.arm_sync)
        )
    }
    seen: set[tuple] = set()
    with directory_changes_applying():  # what comes from Entra is not written back to it
        _import_each(graph, tally, now, maps, links, seen)


def _import_each(graph: GraphClient, tally: Tally, now, maps: dict, links: dict, seen: set) -> None:
    for item in graph.all(ELIGIBILITIES):
        key = (
            str(item.get("principalId") or ""),
            str(item.get("roleDefinitionId") or "").lower(),
            str(item.get("directoryScopeId") or "/"),
        )
        seen.add(key)
        apply_each(
            tally, "eligibilities", " ".join(key), _eligibility_apply, item, key, links.get(key), maps, now
        )
    for key, link in links.items():
        if key not in seen:
            apply_each(tally, "eligibilities", " ".join(key), _eligibility_end, link, now)


def _eligibility_apply(item: dict, key: tuple, link: ImportedEligibility | None, maps: dict, now) -> str:
    principal_id, template_id, scope = key
    role = maps["roles"].get(template_id)
    if role is None:
        raise ValidationError(f"The role {template_id} is not in the catalog.")
    principal = maps["users"].get(principal_id) or maps["groups"].get(principal_id)
    if principal is None:
        raise ValidationError(f"{principal_id} is not an imported user or group.")
    scope = scope_validate(scope, kind=role.kind)
    ends_at = parse_time(item.get("endDateTime"))
    if (ends_at is not None and ends_at <= now) or not getattr(principal, "is_active", True):
        return "skipped"  # over already, or a deactivated account (which holds no roles)
    return eligibility_mirror(
        item=item,
        link=link,
        principal=principal,
        role=role,
        scope=scope,
        ends_at=ends_at,
        now=now,
        relink=lambda eligible: _link(link, key, eligible, item, now),
    )


def eligibility_mirror(
    *,
    item: dict,
    link: ImportedEligibility | None,
    principal,
    role: Role,
    scope: str,
    ends_at,
    now,
    relink: Callable[[EligibleAssignment], None],
) -> str:
    """Make the portal hold the eligibility the directory listed (``item``, already mapped to
    principal, role, scope and end): through its link if it has one and it is still open,
    else by adopting the person's open portal eligibility (audited as linked), else by
    assigning a new one; the end follows the directory's. ``relink`` records the link. Not
    while a removal made in the portal is on its way (that would bring it back). Shared by
    the imports of directory roles, governed groups and Azure roles."""
    if link is not None and not _is_open(link.eligible, now) and _removal_pending(link.eligible):
        return "skipped"  # removed in the portal; the removal is on its way to Entra
    eligible = link.eligible if link is not None and _is_open(link.eligible, now) else None
    adopted = False
    if eligible is None:
        eligible = _open_portal_eligibility(principal, role, scope, now)
        adopted = eligible is not None
    with transaction.atomic():
        if eligible is None:
            # cast: the two-person rule holds back what people do, never a change with actor None
            eligible = cast(
                EligibleAssignment,
                eligible_assign(
                    actor=None,
                    role=role,
                    principal=principal,
                    scope=scope,
                    ends_at=ends_at,
                    justification=IMPORTED,
                    now=now,
                    notify=False,  # Entra announced it, by its own notification rules
                ),
            )
            relink(eligible)
            return "created"
        changed = eligible.ends_at != ends_at
        if changed:
            eligible_update(
                actor=None,
                assignment=eligible,
                ends_at=ends_at,
                justification="Changed in Microsoft Entra ID.",
                now=now,
            )
        if adopted:
            audit_record(
                action="entra.eligibility_linked",
                target=eligible,
                role=role,
                scope=scope,
                details={"entra_id": str(item.get("id") or ""), "principal": principal.label},
                at=now,
            )
        if link is None or link.eligible_id != eligible.pk:
            relink(eligible)
    return "updated" if changed or adopted else "unchanged"


def _eligibility_end(link: ImportedEligibility, now) -> str:
    with transaction.atomic():
        outcome = "unchanged"
        if _is_open(link.eligible, now):
            eligible_remove(
                actor=None, assignment=link.eligible, reason="Removed in Microsoft Entra ID.", now=now
            )
            outcome = "removed"
        link.delete()
    return outcome


def _link(link, key, eligible: EligibleAssignment, item: dict, now) -> None:
    principal_id, template_id, scope = key
    entra_id = str(item.get("id") or "")[:200]
    if link is None:
        ImportedEligibility.objects.create(
            eligible=eligible,
            principal_id=principal_id,
            role_template_id=template_id,
            directory_scope=scope,
            entra_id=entra_id,
            imported_at=now,
        )
    else:
        ImportedEligibility.objects.filter(pk=link.pk).update(
            eligible=eligible, entra_id=entra_id, imported_at=now
        )


def _open_portal_eligibility(principal, role: Role, scope: str, now) -> EligibleAssignment | None:
    field = "user" if isinstance(principal, User) else "group"
    return (
        EligibleAssignment.objects.filter(
            **{field: principal}, role=role, scope=scope, entra_import__isnull=True
        )
        .current(now)
        .filter(ended_at__isnull=True)
        .order_by("starts_at")
        .first()
    )


def _removal_pending(eligible: EligibleAssignment) -> bool:
    return DirectoryOperation.objects.filter(
        eligible=eligible,
        operation=DirectoryOperation.Operation.ELIGIBLE_REMOVE,
        status=DirectoryOperation.Status.PENDING,
    ).exists()


def _is_open(eligible: EligibleAssignment, now) -> bool:
    return eligible.ended_at is None and eligible.is_current(now)
