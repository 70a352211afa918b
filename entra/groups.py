"""PIM for Groups in Entra: the member and owner roles of governed groups (Role.Kind.GROUP)
provisioned through `identityGovernance/privilegedAccess/group/`, and imported from it.

Writes: an active assignment becomes one assignmentScheduleRequest (adminAssign with the
activation's end, or adminRemove); an eligibility one eligibilityScheduleRequest; both carry
accessId (member | owner), principalId and groupId, the justification and, when the activation
had a ticket, ticketInfo. Idempotent as for directory roles (RoleAssignmentExists on an assign
counts as assigned, RoleAssignmentDoesNotExist on a remove as removed). Proof of effect reads
assignmentScheduleInstances, which Graph answers only with a $filter on groupId or principalId.

Reads (the sync's "group_pim" step, for each governed group, always with the $filter on
groupId): eligibilityScheduleInstances mirrored as portal eligibilities (linked as
entra.eligibilities links directory-role ones), assignmentScheduleInstances of type
"assigned" that the portal did not make reported as drift findings (entra.drift's model)
and, with ENTRA_REMOVE_DRIFT on, removed by an adminRemove assignmentScheduleRequest under
entra.drift's rules (service principals, ENTRA_DRIFT_EXCLUDE and lockout-protected roles are
only ever reported).
Settings ENTRA_PIM_GROUPS (object ids) makes the sync govern those groups first.
"""

from functools import partial
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db.models import Q
from django.utils import timezone

from accounts.models import DirectoryGroup, User
from roles.directory import PermanentDirectoryError
from roles.directory_services import directory_changes_applying
from roles.models import ActiveAssignment, DirectoryOperation, EligibleAssignment, Role
from roles.services import (
    group_govern,
    group_role_name,
    role_update,
)

from .backend import (
    ELIGIBILITY_ACTIONS,
    JUSTIFICATION_LIMIT,
    _justification,
    _schedule,
    eligibility_open,
    odata_literal,
    post_schedule_request,
    principal_object_id,
    same_end,
    ticket_info,
)
from .client import GraphClient, GraphError, GraphUnavailable, get_graph
from .drift import ENDED_GRACE, REMOVAL_JUSTIFICATION, _detect, _remove, _resolve, _time
from .eligibilities import _eligibility_end, eligibility_mirror
from .models import DriftFinding, ImportedEligibility
from .people import GROUP_SELECT, _group_apply, _members_apply
from .sync import Tally, _settings_apply, apply_each, parse_time

BASE = "identityGovernance/privilegedAccess/group/"
ASSIGNMENT_REQUESTS = BASE + "assignmentScheduleRequests"
ASSIGNMENT_INSTANCES = BASE + "assignmentScheduleInstances"
ELIGIBILITY_REQUESTS = BASE + "eligibilityScheduleRequests"
ELIGIBILITY_INSTANCES = BASE + "eligibilityScheduleInstances"
POLICY_ASSIGNMENTS = "policies/roleManagementPolicyAssignments"
IMPORTED = "Imported from PIM for Groups in Microsoft Entra ID."
Target = tuple[str, str, str]  # (principal object id, group object id, access id)


# --- Provisioning (GraphBackend dispatches group roles here) -------------------------------------


def group_target(assignment: ActiveAssignment | EligibleAssignment) -> Target:
    role = assignment.role
    group = role.governed_group
    if group is None or not group.external_id:
        raise PermanentDirectoryError(f"{role} governs no Entra group (no object id): run entra_sync.")
    return principal_object_id(assignment), group.external_id, role.group_access


def group_grant(assignment: ActiveAssignment) -> dict:
    return group_schedule_request(
        get_graph(),
        path=ASSIGNMENT_REQUESTS,
        action="adminAssign",
        target=group_target(assignment),
        justification=_justification("Granted", assignment),
        schedule_info=_schedule(assignment),
        ticket_info=ticket_info(assignment),
    )


def group_revoke(assignment: ActiveAssignment) -> dict:
    reason = assignment.get_end_reason_display() or "Ended"
    return group_schedule_request(
        get_graph(),
        path=ASSIGNMENT_REQUESTS,
        action="adminRemove",
        target=group_target(assignment),
        justification=_justification(reason, assignment),
        ticket_info=ticket_info(assignment),
    )


def group_eligibility(eligible: EligibleAssignment, operation: str) -> dict:
    """As GraphBackend.eligibility, through the group eligibilityScheduleRequests."""
    graph, target = get_graph(), group_target(eligible)
    action = ELIGIBILITY_ACTIONS[operation]
    if action == "adminRemove":
        reason = eligible.get_end_reason_display() or "Removed"
        justification = _justification(reason, eligible)
        return group_schedule_request(
            graph,
            path=ELIGIBILITY_REQUESTS,
            action=action,
            target=target,
            justification=justification,
            ticket_info=ticket_info(eligible),
        )
    verb = {"adminAssign": "Made eligible", "adminRenew": "Renewed"}.get(action, "Changed")

    def send(entra_action: str) -> dict:
        return group_schedule_request(
            graph,
            path=ELIGIBILITY_REQUESTS,
            action=entra_action,
            target=target,
            justification=_justification(verb, eligible),
            schedule_info=_schedule(eligible),
            ticket_info=ticket_info(eligible),
        )

    result = send(action)
    if action != "adminAssign" and result.get("status") == "already removed":
        result = send("adminAssign")  # nothing there to change: assign it
    return result


def group_in_force(target: ActiveAssignment | EligibleAssignment) -> bool:
    """As GraphBackend.in_force, through the group's assignment (or eligibility) schedule
    instances: an open eligibility counts only with the portal's end."""
    principal_id, group_id, access = group_target(target)
    # groupId first: Graph requires a filter on groupId or principalId.
    odata_filter = " and ".join(
        f"{name} eq {odata_literal(value)}"
        for name, value in (("groupId", group_id), ("principalId", principal_id), ("accessId", access))
    )
    if not isinstance(target, EligibleAssignment):
        answer = get_graph().get(
            ASSIGNMENT_INSTANCES, params={"$filter": odata_filter, "$select": "id"}, retries=0
        )
        return bool(answer.get("value"))
    answer = get_graph().get(
        ELIGIBILITY_INSTANCES, params={"$filter": odata_filter, "$select": "id,endDateTime"}, retries=0
    )
    instances = answer.get("value") or []
    if not eligibility_open(target, timezone.now()):
        return bool(instances)
    return any(same_end(instance.get("endDateTime"), target.ends_at) for instance in instances)


def group_schedule_request(
    graph: GraphClient,
    *,
    path: str,
    action: str,
    target: Target,
    justification: str,
    schedule_info: dict | None = None,
    ticket_info: dict | None = None,
) -> dict:
    """POST one group assignment or eligibility schedule request; what to record."""
    principal_id, group_id, access = target
    body: dict[str, Any] = {
        "accessId": access,
        "principalId": principal_id,
        "groupId": group_id,
        "action": action,
        "justification": justification[:JUSTIFICATION_LIMIT],
    }
    return post_schedule_request(
        graph, path, body, schedule_info=schedule_info, ticket_info=ticket_info, refused_by="group policy"
    )


# --- Import (a sync step) --------------------------------------------------------------------------


def import_group_pim(graph: GraphClient, tally: Tally, now) -> None:
    """Govern the groups ENTRA_PIM_GROUPS names, then, for every governed group, mirror its
    eligibilities and report assignments made outside the portal."""
    for object_id in settings.ENTRA_PIM_GROUPS:
        try:
            _pim_group_ensure(graph, object_id, tally)
        except GraphUnavailable:
            raise
        except GraphError as error:  # gone, or not readable: this group's error, not the run's end
            tally.error("group_pim", object_id, str(error))
    groups = DirectoryGroup.objects.filter(governing_roles__isnull=False).exclude(external_id="").distinct()
    for group in groups.order_by("pk"):
        try:
            _group_import(graph, group, tally, now)
        except GraphUnavailable:
            raise  # Graph down or throttled: the run ends, the next one starts over
        except GraphError as error:  # e.g. a group deleted in Entra: its error, the others go on
            tally.error("group_pim", group.name, str(error))


def _group_import(graph: GraphClient, group: DirectoryGroup, tally: Tally, now) -> None:
    roles = {role.group_access: role for role in Role.objects.filter(governed_group=group)}
    _roles_rename(group, roles, tally)
    group_filter = {"$filter": f"groupId eq {odata_literal(group.external_id)}"}
    # Both listings complete before anything changes: a partial one proves nothing.
    eligibilities = list(graph.all(ELIGIBILITY_INSTANCES, params=group_filter))
    assignments = list(graph.all(ASSIGNMENT_INSTANCES, params=group_filter))
    _policies_apply(graph, group, roles, tally)
    _eligibilities_mirror(group, roles, eligibilities, tally, now)
    findings = _drift_record(group, roles, assignments, tally, now)
    if settings.ENTRA_REMOVE_DRIFT:
        _remove(graph, findings, tally, now, remove=partial(remove_finding, graph), kind="group_drift")


def _policies_apply(graph: GraphClient, group: DirectoryGroup, roles: dict, tally: Tally) -> None:
    """The group's member and owner policies (Entra's role settings of each) as the two
    roles' settings, mapped as for directory roles (entra.policies). A refused read (no
    RoleManagementPolicy.Read.AzureADGroup) is this group's error; the rest goes on."""
    users = {user.external_id: user for user in User.objects.exclude(external_id="")}
    groups = {g.external_id: g for g in DirectoryGroup.objects.exclude(external_id="")}
    for access, role in sorted(roles.items()):
        odata_filter = (
            f"scopeId eq {odata_literal(group.external_id)} and scopeType eq 'Group' "
            f"and roleDefinitionId eq {odata_literal(access)}"
        )
        params = {"$filter": odata_filter, "$expand": "policy($expand=rules)"}
        try:
            items = list(graph.all(POLICY_ASSIGNMENTS, params=params))
        except GraphUnavailable:
            raise
        except GraphError as error:
            tally.error("group_settings", role.name, str(error))
            continue
        for item in items[:1]:
            rules = (item.get("policy") or {}).get("rules") or []
            apply_each(tally, "group_settings", role.name, _settings_apply, role, rules, users, groups, tally)


def _pim_group_ensure(graph: GraphClient, object_id: str, tally: Tally) -> None:
    """Import the group (any security or Microsoft 365 group, not only the role-assignable ones
    the groups step reads) and its members, every run, and govern it if it is not yet."""
    group = DirectoryGroup.objects.filter(external_id=object_id).first()
    item = graph.get(f"groups/{object_id}", params={"$select": GROUP_SELECT})
    try:
        group, outcome = _group_apply(object_id, item, group)
    except ValidationError as error:
        tally.error("group_pim", object_id, "; ".join(error.messages))
        return
    tally.count("group_pim_groups", outcome)
    users = {user.external_id: user for user in User.objects.exclude(external_id="")}
    members = {
        str(member.get("id"))
        for member in graph.all(f"groups/{object_id}/members", params={"$select": "id"})
        if str(member.get("@odata.type", "#microsoft.graph.user")).endswith(".user")
    }
    _members_apply(group, members, users, tally)
    if not group.governing_roles.exists():
        apply_each(tally, "group_pim", group.name, _govern, group)


def _govern(group: DirectoryGroup) -> str:
    group_govern(actor=None, group=group)
    return "governed"


def _roles_rename(group: DirectoryGroup, roles: dict, tally: Tally) -> None:
    """A group renamed in Entra: its roles' names follow ("Member of <new name>")."""
    for access, role in roles.items():
        name = group_role_name(group, access)
        if role.name != name:
            apply_each(tally, "group_pim_roles", role.name, _role_rename, role, name)


def _role_rename(role: Role, name: str) -> str:
    role_update(actor=None, role=role, changes={"name": name})
    role.name = name
    return "renamed"


def _instance_key(item: dict) -> tuple[str, str]:
    return str(item.get("principalId") or ""), str(item.get("accessId") or "").lower()


def _eligibilities_mirror(group: DirectoryGroup, roles: dict, items: list[dict], tally: Tally, now) -> None:
    users = {u.external_id: u for u in User.objects.exclude(external_id="")}
    groups = {g.external_id: g for g in DirectoryGroup.objects.exclude(external_id="")}
    links = {
        (link.principal_id, link.role_template_id): link
        for link in ImportedEligibility.objects.filter(directory_scope=group.external_id).select_related(
            "eligible__role"
        )
    }
    seen = set()
    with directory_changes_applying():  # what comes from Entra is not written back to it
        for item in items:
            key = _instance_key(item)
            seen.add(key)
            label = f"{group.name}: {' '.join(key)}"
            apply_each(
                tally,
                "group_pim",
                label,
                _eligibility_apply,
                group,
                roles,
                item,
                key,
                links.get(key),
                users,
                groups,
                now,
            )
        for key, link in links.items():
            if key not in seen:
                apply_each(tally, "group_pim", f"{group.name}: {' '.join(key)}", _eligibility_end, link, now)


def _eligibility_apply(group, roles, item, key, link, users, groups, now) -> str:
    principal_id, access = key
    role = roles.get(access)
    if role is None:
        raise ValidationError(f"Unknown accessId “{access[:20]}” for {group.name}.")
    principal = users.get(principal_id) or groups.get(principal_id)
    if principal is None:
        raise ValidationError(f"{principal_id} is not an imported user or group.")
    ends_at = parse_time(item.get("endDateTime"))
    if (ends_at is not None and ends_at <= now) or not getattr(principal, "is_active", True):
        return "skipped"
    return eligibility_mirror(
        item=item,
        link=link,
        principal=principal,
        role=role,
        scope="/",
        ends_at=ends_at,
        now=now,
        relink=lambda eligible: _link(link, key, group, eligible, item, now),
    )


def _link(link, key, group: DirectoryGroup, eligible, item: dict, now) -> None:
    principal_id, access = key
    entra_id = str(item.get("id") or "")[:200]
    if link is None:
        ImportedEligibility.objects.create(
            eligible=eligible,
            principal_id=principal_id,
            role_template_id=access,
            directory_scope=group.external_id,
            entra_id=entra_id,
            imported_at=now,
        )
    else:
        ImportedEligibility.objects.filter(pk=link.pk).update(
            eligible=eligible, entra_id=entra_id, imported_at=now
        )


# --- Drift -------------------------------------------------------------------------------------


def _drift_record(
    group: DirectoryGroup, roles: dict, items: list[dict], tally: Tally, now
) -> list[DriftFinding]:
    """Assignments of type "assigned" the portal did not make: open findings (keyed as
    DriftFinding is: principal, access as the "role template", group id as the "scope");
    the findings Entra still lists, for removal when ENTRA_REMOVE_DRIFT is on."""
    Op = DirectoryOperation
    recent = now - ENDED_GRACE
    portal = ActiveAssignment.objects.filter(role__governed_group=group)
    granted = portal.filter(
        Q(ends_at__isnull=True) | Q(ends_at__gt=recent),
        Q(ended_at__isnull=True) | Q(ended_at__gt=recent),
        starts_at__lte=now,
        directory_operations__operation=Op.Operation.GRANT,
        directory_operations__status__in=[Op.Status.DONE, Op.Status.PENDING],
    )
    removing = portal.filter(
        directory_operations__operation=Op.Operation.REVOKE, directory_operations__status=Op.Status.PENDING
    )
    fields = ("user__external_id", "group__external_id", "role__group_access")
    expected = {
        (user_id or group_id or "", access)
        for queryset in (granted, removing)
        for user_id, group_id, access in queryset.values_list(*fields)
    }
    outside = {}
    for item in items:
        if str(item.get("memberType") or "direct").lower() != "direct":
            tally.count("group_drift", "inherited")
            continue
        if str(item.get("assignmentType") or "assigned").lower() != "assigned":
            tally.count("group_drift", "activated")  # an activation of an eligibility (Entra's own JIT)
            continue
        ends_at = _time(item.get("endDateTime"))
        if ends_at is not None and ends_at <= now:
            tally.count("group_drift", "expired")
            continue
        key = _instance_key(item)
        if key in expected:
            tally.count("group_drift", "portal")
        else:
            outside[key] = item
    open_findings = {
        (f.principal_id, f.role_template_id): f
        for f in DriftFinding.objects.filter(resolved_at__isnull=True, directory_scope=group.external_id)
    }
    users = {u.external_id: u for u in User.objects.filter(external_id__in=[k[0] for k in outside])}
    groups = {
        g.external_id: g for g in DirectoryGroup.objects.filter(external_id__in=[k[0] for k in outside])
    }
    by_access = {access: role for access, role in roles.items()}
    current = []
    for key, item in outside.items():
        finding = open_findings.get(key)
        if finding is None:
            principal_id, access = key
            finding = _detect(
                (principal_id, access, group.external_id),
                item,
                users,
                groups,
                by_access,
                now,
            )
            tally.count("group_drift", "detected")
        else:
            DriftFinding.objects.filter(pk=finding.pk).update(
                last_seen_at=now, assignment_id=str(item.get("id") or "")[:200]
            )
            tally.count("group_drift", "open")
        current.append(finding)
    for key, finding in open_findings.items():
        if key not in outside:
            _resolve(finding, DriftFinding.Resolution.GONE, now)
            tally.count("group_drift", "resolved")
    return current


def remove_finding(graph: GraphClient, finding: DriftFinding) -> dict:
    """adminRemove of a group assignment made outside the portal (entra.drift decides which
    findings may go: not service principals, ENTRA_DRIFT_EXCLUDE, lockout-protected roles)."""
    return group_schedule_request(
        graph,
        path=ASSIGNMENT_REQUESTS,
        action="adminRemove",
        target=(finding.principal_id, finding.directory_scope, finding.role_template_id),
        justification=REMOVAL_JUSTIFICATION,
    )
