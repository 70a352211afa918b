"""The directory back end for Microsoft Entra ID (PIM_DIRECTORY_BACKEND=entra.backend.GraphBackend).

Eligibilities of Entra roles made or changed in the portal are written back the same way,
through roleEligibilityScheduleRequests (GraphBackend.eligibility).

Azure roles at an Azure Resource Manager scope (a subscription, resource group, resource or
management group) go through ARM instead (entra.arm), by the same calls.
Roles of governed groups (PIM for Groups, Role.Kind.GROUP) go to
identityGovernance/privilegedAccess/group/ instead: each method hands them to entra.groups.

The outbox (roles.directory_services) calls grant and revoke after commit and retries what
fails transiently. Each becomes one role assignment schedule request: adminAssign with the
activation's end as expiration, or adminRemove. An app-only token cannot selfActivate for a
user, and the portal has already enforced MFA, justification and approval.

Every request carries the assignment's ticket (ticketInfo) when it has one: the activation's,
or the one an administrator gave for a direct or eligible assignment.

Both are idempotent: RoleAssignmentExists on a grant counts as granted, and
RoleAssignmentDoesNotExist on a revoke as removed (Entra also ends assignments by itself at
their expiration, so a revoke after expiry usually finds nothing).
"""

import re
from datetime import UTC, datetime
from typing import Any

from django.utils import timezone

from roles.directory import DirectoryBackend, PermanentDirectoryError
from roles.models import ActiveAssignment, DirectoryOperation, EligibleAssignment, Role

from .client import GraphClient, GraphError, get_graph

REQUESTS_PATH = "roleManagement/directory/roleAssignmentScheduleRequests"
INSTANCES_PATH = "roleManagement/directory/roleAssignmentScheduleInstances"
ELIGIBILITY_REQUESTS_PATH = "roleManagement/directory/roleEligibilityScheduleRequests"
ELIGIBILITY_INSTANCES_PATH = "roleManagement/directory/roleEligibilityScheduleInstances"
ELIGIBILITY_ACTIONS: dict[str, str] = {
    DirectoryOperation.Operation.ELIGIBLE_ASSIGN: "adminAssign",
    DirectoryOperation.Operation.ELIGIBLE_UPDATE: "adminUpdate",
    DirectoryOperation.Operation.ELIGIBLE_EXTEND: "adminExtend",
    DirectoryOperation.Operation.ELIGIBLE_RENEW: "adminRenew",
    DirectoryOperation.Operation.ELIGIBLE_REMOVE: "adminRemove",
}
# Entra answers these when the change is already there (or, for a change, nothing is there).
NOTHING_THERE = "RoleAssignmentDoesNotExist"
ALREADY_DONE = {
    "adminAssign": "RoleAssignmentExists",
    "adminRemove": NOTHING_THERE,
    "adminUpdate": NOTHING_THERE,
    "adminExtend": NOTHING_THERE,
    "adminRenew": NOTHING_THERE,
}
POLICY_FAILED = "RoleAssignmentRequestPolicyValidationFailed"
_RULE_NAME = re.compile(r"\b([A-Z][A-Za-z]*Rule)\b")
JUSTIFICATION_LIMIT = 500


class GraphBackend(DirectoryBackend):
    """Grants and revokes the portal's active assignments of Entra directory roles in Entra,
    and confirms them through the schedule instances (Entra applies requests asynchronously)."""

    confirms_effect = True

    def grant(self, assignment: ActiveAssignment) -> dict:
        if (arm_target := _arm().arm_target(assignment)) is not None:
            return _arm().arm_grant(assignment, arm_target)
        if assignment.role.kind == Role.Kind.GROUP:  # PIM for Groups (entra.groups)
            from .groups import group_grant

            return group_grant(assignment)
        target = directory_target(assignment)
        if target is None:
            return {"skipped": "not an Entra directory role"}
        return schedule_request(
            get_graph(),
            action="adminAssign",
            target=target,
            justification=_justification("Granted", assignment),
            schedule_info=_schedule(assignment),
            ticket_info=ticket_info(assignment),
        )

    def revoke(self, assignment: ActiveAssignment) -> dict:
        if (arm_target := _arm().arm_target(assignment)) is not None:
            return _arm().arm_revoke(assignment, arm_target)
        if assignment.role.kind == Role.Kind.GROUP:
            from .groups import group_revoke

            return group_revoke(assignment)
        target = directory_target(assignment)
        if target is None:
            return {"skipped": "not an Entra directory role"}
        reason = assignment.get_end_reason_display() or "Ended"
        return schedule_request(
            get_graph(),
            action="adminRemove",
            target=target,
            justification=_justification(reason, assignment),
            ticket_info=ticket_info(assignment),
        )

    def eligibility(self, eligible: EligibleAssignment, operation: str) -> dict:
        """An eligibility change written back through roleEligibilityScheduleRequests. Changing
        or renewing one that Entra does not have (made before write-back, or removed there)
        assigns it instead, so Entra ends up with what the portal has."""
        if (arm_target := _arm().arm_target(eligible)) is not None:
            return _arm().arm_eligibility(eligible, operation, arm_target)
        if eligible.role.kind == Role.Kind.GROUP:
            from .groups import group_eligibility

            return group_eligibility(eligible, operation)
        target = directory_target(eligible)
        if target is None:
            return {"skipped": "not an Entra directory role"}
        graph = get_graph()
        action = ELIGIBILITY_ACTIONS[operation]
        if action == "adminRemove":
            reason = eligible.get_end_reason_display() or "Removed"
            return schedule_request(
                graph,
                action=action,
                target=target,
                justification=_justification(reason, eligible),
                ticket_info=ticket_info(eligible),
                path=ELIGIBILITY_REQUESTS_PATH,
            )
        verb = {"adminAssign": "Made eligible", "adminRenew": "Renewed"}.get(action, "Changed")
        justification = _justification(verb, eligible)

        def send(entra_action: str) -> dict:
            return schedule_request(
                graph,
                action=entra_action,
                target=target,
                justification=justification,
                schedule_info=_schedule(eligible),
                ticket_info=ticket_info(eligible),
                path=ELIGIBILITY_REQUESTS_PATH,
            )

        result = send(action)
        if action != "adminAssign" and result.get("status") == "already removed":
            result = send("adminAssign")  # nothing there to change: assign it
        return result

    def in_force(self, target: ActiveAssignment | EligibleAssignment) -> bool | None:
        """Read the schedule instances of the target's principal, role and scope: an active
        assignment is in force if one is there; an eligibility that has not ended only if one
        ends when the portal's does (so an extension shows once Entra has the new end), one
        that has ended as long as anything of it is left."""
        if target.role.kind == Role.Kind.GROUP:
            from .groups import group_in_force

            return group_in_force(target)
        if (arm_target := _arm().arm_target(target)) is not None:
            return _arm().arm_in_force(
                arm_target, eligible=target if isinstance(target, EligibleAssignment) else None
            )
        directory = directory_target(target)
        if directory is None:
            return None
        principal_id, role_definition_id, directory_scope_id = directory
        clauses = (
            ("principalId", principal_id),
            ("roleDefinitionId", role_definition_id),
            ("directoryScopeId", directory_scope_id),
        )
        odata_filter = " and ".join(f"{name} eq {odata_literal(value)}" for name, value in clauses)
        eligibility = isinstance(target, EligibleAssignment)
        path = ELIGIBILITY_INSTANCES_PATH if eligibility else INSTANCES_PATH
        select = "id,endDateTime" if eligibility else "id"
        # One read, no in-process retries: the worker looks again later anyway.
        answer = get_graph().get(path, params={"$filter": odata_filter, "$select": select}, retries=0)
        instances = answer.get("value") or []
        now = timezone.now()
        if not isinstance(target, EligibleAssignment) or not eligibility_open(target, now):
            return bool(instances)
        return any(same_end(instance.get("endDateTime"), target.ends_at) for instance in instances)


def eligibility_open(eligible: EligibleAssignment, now: datetime) -> bool:
    """Current or still to start: in force only with the portal's end (see in_force)."""
    return eligible.is_current(now) or eligible.starts_at > now


def same_end(graph_end: str | None, ends_at: datetime | None) -> bool:
    """Entra's endDateTime (None: no expiration) is the portal's end, to the second."""
    if graph_end is None or ends_at is None:
        return graph_end is None and ends_at is None
    try:
        moment = datetime.fromisoformat(graph_end.replace("Z", "+00:00"))
    except ValueError:
        return False
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return abs((moment - ends_at).total_seconds()) < 1


def _arm():
    """entra.arm: Azure roles at an Azure Resource Manager scope go there (imported here, as
    it builds on this module)."""
    from . import arm

    return arm


def odata_literal(value: str) -> str:
    """A string literal for $filter: single-quoted, quotes doubled (OData ABNF)."""
    return "'" + value.replace("'", "''") + "'"


def _schedule(assignment: ActiveAssignment | EligibleAssignment) -> dict:
    """scheduleInfo: from the start (or now, if it has passed) to the end, or no expiration."""
    if assignment.ends_at is None:
        expiration = {"type": "noExpiration"}
    else:
        expiration = {"type": "afterDateTime", "endDateTime": graph_time(assignment.ends_at)}
    return {"startDateTime": graph_time(max(assignment.starts_at, timezone.now())), "expiration": expiration}


def directory_target(assignment: ActiveAssignment | EligibleAssignment) -> tuple[str, str, str] | None:
    """(principal object id, role template id, directory scope), or None for roles that live
    only in the portal (its own, Azure and custom ones)."""
    role = assignment.role
    if role.kind != Role.Kind.ENTRA:
        return None
    if not role.template_id:
        raise PermanentDirectoryError(f"{role} is not a directory role: it has no Entra template id.")
    return principal_object_id(assignment), role.template_id, assignment.scope


def principal_object_id(assignment: ActiveAssignment | EligibleAssignment) -> str:
    """The Entra object id of the assignment's user or group; a person or group the sync has
    not linked (a local account) cannot be provisioned."""
    principal = assignment.principal
    if not principal.external_id:
        raise PermanentDirectoryError(
            f"{principal.label} is not a directory user or group: no Entra object id (run entra_sync)."
        )
    return principal.external_id


def schedule_request(
    graph: GraphClient,
    *,
    action: str,
    target: tuple[str, str, str],
    justification: str,
    schedule_info: dict | None = None,
    ticket_info: dict | None = None,
    path: str = REQUESTS_PATH,
) -> dict:
    """POST one roleAssignmentScheduleRequest (or, by path, roleEligibilityScheduleRequest);
    what to record on the operation."""
    principal_id, role_definition_id, directory_scope_id = target
    body: dict[str, Any] = {
        "action": action,
        "principalId": principal_id,
        "roleDefinitionId": role_definition_id,
        "directoryScopeId": directory_scope_id,
        "justification": justification[:JUSTIFICATION_LIMIT],
    }
    return post_schedule_request(graph, path, body, schedule_info=schedule_info, ticket_info=ticket_info)


def post_schedule_request(
    graph: GraphClient,
    path: str,
    body: dict[str, Any],
    *,
    schedule_info: dict | None = None,
    ticket_info: dict | None = None,
    refused_by: str = "role policy",
) -> dict:
    """POST a schedule request (a directory role's or a group's: the caller names the target
    in ``body``, with its action and justification); what to record on the operation. An
    answer saying the change is already there counts as done; a policy refusal names the
    rules that refused it."""
    action = body["action"]
    if schedule_info is not None:
        body["scheduleInfo"] = schedule_info
    if ticket_info:
        body["ticketInfo"] = ticket_info
    try:
        answer = graph.post(path, body)
    except GraphError as error:
        if error.code == ALREADY_DONE[action]:
            state = "already assigned" if action == "adminAssign" else "already removed"
            return {"action": action, "status": state, "code": error.code}
        if error.code == POLICY_FAILED:
            rules = ", ".join(dict.fromkeys(_RULE_NAME.findall(str(error)))) or "a policy rule"
            raise GraphError(
                f"Entra's {refused_by} refused the {action} ({rules}): {error}",
                code=error.code,
                status=error.status,
            ) from None
        raise
    return {
        "action": action,
        "status": answer.get("status", ""),
        "request_id": answer.get("id", ""),
        "target_schedule_id": answer.get("targetScheduleId") or "",
    }


def ticket_info(assignment: ActiveAssignment | EligibleAssignment) -> dict | None:
    """ticketInfo of the assignment's ticket (an activation's, or the administrator's), or
    None when it has none (Entra's own requests leave it out then)."""
    if not (assignment.ticket_number or assignment.ticket_system):
        return None
    return {"ticketNumber": assignment.ticket_number, "ticketSystem": assignment.ticket_system}


def graph_time(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _justification(verb: str, assignment: ActiveAssignment | EligibleAssignment) -> str:
    text = " ".join((assignment.justification or "").split())
    if isinstance(assignment, EligibleAssignment):
        source = "an eligible assignment"
    elif assignment.origin == ActiveAssignment.Origin.ACTIVATION:
        source = "an activation"
    else:
        source = "a direct assignment"
    return f"{verb} in PIM Portal ({source}): {text}" if text else f"{verb} in PIM Portal ({source})"
