"""Azure resource roles through Azure Resource Manager (ARM).

Azure roles at a subscription, resource group, resource or management group scope are
granted, revoked and made eligible through ARM's PIM API (`Microsoft.Authorization/
roleAssignmentScheduleRequests` and `roleEligibilityScheduleRequests`, api-version
2020-10-01), with a token of the same Entra app for ARM's scope
(`https://management.azure.com/.default`). An Azure role at `/` has no ARM scope: it lives in
the portal only, as before.

ARM requests are PUT under a name the caller chooses. The name is derived from the outbox
operation being carried out, so a retried operation (its answer lost to a timeout, say) sends
the same request again instead of a second one. As with Graph, RoleAssignmentExists on an
assign and RoleAssignmentDoesNotExist on a remove or change count as done, and ARM applies
requests asynchronously: in_force reads the assignment schedule instances at the scope.
"""

import os
import threading
import uuid
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.utils import timezone

from roles.directory import PermanentDirectoryError, running_directory_operation
from roles.models import ActiveAssignment, EligibleAssignment, Role

from .backend import (
    _RULE_NAME,
    ELIGIBILITY_ACTIONS,
    JUSTIFICATION_LIMIT,
    NOTHING_THERE,
    POLICY_FAILED,
    eligibility_open,
    graph_time,
    odata_literal,
    principal_object_id,
    same_end,
)
from .backend import _justification as justification_for
from .client import GraphClient, GraphError, get_graph

API_VERSION = "2020-10-01"
AUTHORIZATION = "providers/Microsoft.Authorization"
ASSIGNMENT_REQUESTS = "roleAssignmentScheduleRequests"
ELIGIBILITY_REQUESTS = "roleEligibilityScheduleRequests"
ASSIGNMENT_INSTANCES = "roleAssignmentScheduleInstances"
ELIGIBILITY_INSTANCES = "roleEligibilityScheduleInstances"
ASSIGNED = "RoleAssignmentExists"
# Request names: UUIDs derived from the outbox operation under this namespace.
REQUEST_NAMESPACE = uuid.UUID("6f1c1f0e-4d1b-5a8e-9c43-1a6f5e0b7a21")


class ArmClient(GraphClient):
    """Calls Azure Resource Manager: GraphClient's token, retries, error parsing and paging
    (ARM's `nextLink`), with api-version on every call and PUT for requests."""

    service = "Azure Resource Manager"
    parent: GraphClient | None = None

    def request(self, method: str, path_or_url: str, *, params=None, json=None, headers=None) -> dict:
        if "://" not in path_or_url:  # a nextLink carries its own api-version
            params = {"api-version": API_VERSION, **(params or {})}
        return super().request(method, path_or_url, params=params, json=json, headers=headers)

    def put(self, path: str, body: dict) -> dict:
        """A write: not retried here (the outbox retries it under the same request name)."""
        return self.request("PUT", path, json=body)


_lock = threading.Lock()
_arm: ArmClient | None = None


def get_arm() -> ArmClient:
    """This process's ARM client, on the Graph client's msal application (rebuilt with it)."""
    global _arm
    graph = get_graph()
    with _lock:
        if _arm is None or _arm.parent is not graph:
            _arm = arm_beside(graph)
        return _arm


def _after_fork_in_child() -> None:
    # As entra.client: a forked worker builds its own (and must not inherit a held lock).
    global _arm, _lock
    _lock = threading.Lock()
    _arm = None


os.register_at_fork(after_in_child=_after_fork_in_child)


def arm_beside(graph: GraphClient) -> ArmClient:
    arm = graph.beside(ArmClient, settings.ENTRA_ARM_URL)
    assert isinstance(arm, ArmClient)  # noqa: S101  (for the type checker)
    arm.parent = graph
    return arm


# --- Scopes and ids -----------------------------------------------------------------------------


def is_arm_scope(scope: str) -> bool:
    return bool(scope) and scope != "/"


def arm_target(assignment: ActiveAssignment | EligibleAssignment) -> tuple[str, str, str] | None:
    """(principal object id, role definition GUID, ARM scope) for an Azure role at an ARM
    scope; None for every other assignment."""
    role = assignment.role
    if role.kind != Role.Kind.AZURE or not is_arm_scope(assignment.scope):
        return None
    if not role.template_id:
        raise PermanentDirectoryError(f"{role} is not an Azure role: it has no role definition id.")
    return principal_object_id(assignment), role.template_id.lower(), assignment.scope


def role_definition_id(scope: str, guid: str) -> str:
    """The role definition's ARM id: under the scope's subscription (as ARM itself answers),
    or tenant-level for a management group scope."""
    parts = scope.split("/")
    if len(parts) > 2 and parts[1].lower() == "subscriptions":
        return f"/subscriptions/{parts[2]}/{AUTHORIZATION}/roleDefinitions/{guid}"
    return f"/{AUTHORIZATION}/roleDefinitions/{guid}"


def definition_guid(definition_id: object) -> str:
    """The GUID at the end of a role definition's ARM id, lower-case."""
    return str(definition_id or "").rstrip("/").rsplit("/", 1)[-1].lower()


def scope_path(scope: str, collection: str, name: str = "") -> str:
    path = f"{scope.rstrip('/')}/{AUTHORIZATION}/{collection}"
    return f"{path}/{name}" if name else path


def request_name(request_type: str) -> str:
    """A stable name for the request the running outbox operation sends (a new one outside
    the outbox, e.g. removing drift, where the caller passes its own)."""
    operation = running_directory_operation()
    if operation is None:
        return str(uuid.uuid4())
    seed = f"{operation.pk}:{operation.operation}:{operation.created_at.isoformat()}:{request_type}"
    return str(uuid.uuid5(REQUEST_NAMESPACE, seed))


# --- Requests ----------------------------------------------------------------------------------


def arm_schedule_request(
    arm: ArmClient,
    *,
    request_type: str,
    target: tuple[str, str, str],
    justification: str,
    schedule_info: dict | None = None,
    ticket_info: dict | None = None,
    collection: str = ASSIGNMENT_REQUESTS,
    name: str = "",
) -> dict:
    """PUT one role assignment (or, by collection, eligibility) schedule request; what to
    record on the operation. Idempotent as GraphBackend's requests are."""
    principal_id, guid, scope = target
    properties: dict[str, Any] = {
        "principalId": principal_id,
        "roleDefinitionId": role_definition_id(scope, guid),
        "requestType": request_type,
        "justification": justification[:JUSTIFICATION_LIMIT],
    }
    if schedule_info is not None:
        properties["scheduleInfo"] = schedule_info
    if ticket_info:
        properties["ticketInfo"] = ticket_info
    name = name or request_name(request_type)
    try:
        answer = arm.put(scope_path(scope, collection, name), {"properties": properties})
    except GraphError as error:
        already = ASSIGNED if request_type == "AdminAssign" else NOTHING_THERE
        if error.code == already:
            state = "already assigned" if request_type == "AdminAssign" else "already removed"
            return {"action": request_type, "status": state, "code": error.code, "request_name": name}
        if error.code == POLICY_FAILED:
            rules = ", ".join(dict.fromkeys(_RULE_NAME.findall(str(error)))) or "a policy rule"
            raise GraphError(
                f"Azure's role policy refused the {request_type} ({rules}): {error}",
                code=error.code,
                status=error.status,
            ) from None
        if error.status == 403:
            raise GraphError(
                f"Azure refused the portal's app at {scope} ({error.code or 'forbidden'}): give its service "
                "principal “User Access Administrator” on the subscription (“Role Based Access Control "
                f"Administrator” cannot make PIM requests). {error}",
                code=error.code,
                status=error.status,
            ) from None
        raise
    answered = answer.get("properties") or {}
    return {
        "action": request_type,
        "status": answered.get("status", ""),
        "request_name": answer.get("name", name),
        "request_id": answer.get("id", ""),
        "target_schedule_id": answered.get("targetRoleAssignmentScheduleId")
        or answered.get("targetRoleEligibilityScheduleId")
        or "",
    }


def _schedule(assignment: ActiveAssignment | EligibleAssignment) -> dict:
    """ARM's scheduleInfo: from the start (or now, if it has passed) to the end, or none."""
    if assignment.ends_at is None:
        expiration: dict = {"type": "NoExpiration"}
    else:
        expiration = {"type": "AfterDateTime", "endDateTime": graph_time(assignment.ends_at)}
    return {"startDateTime": graph_time(max(assignment.starts_at, timezone.now())), "expiration": expiration}


def _ticket(assignment: ActiveAssignment) -> dict | None:
    """The activation's ticket, if it had one (ARM's ticketInfo)."""
    try:
        request = assignment.activation_request
    except ObjectDoesNotExist:
        return None
    number = getattr(request, "ticket_number", "") or ""
    system = getattr(request, "ticket_system", "") or ""
    return {"ticketNumber": number, "ticketSystem": system} if number or system else None


# --- The back end's part for ARM (GraphBackend dispatches here) ---------------------------------


def arm_grant(assignment: ActiveAssignment, target: tuple[str, str, str]) -> dict:
    return arm_schedule_request(
        get_arm(),
        request_type="AdminAssign",
        target=target,
        justification=justification_for("Granted", assignment),
        schedule_info=_schedule(assignment),
        ticket_info=_ticket(assignment),
    )


def arm_revoke(assignment: ActiveAssignment, target: tuple[str, str, str]) -> dict:
    reason = assignment.get_end_reason_display() or "Ended"
    return arm_schedule_request(
        get_arm(),
        request_type="AdminRemove",
        target=target,
        justification=justification_for(reason, assignment),
    )


def arm_eligibility(eligible: EligibleAssignment, operation: str, target: tuple[str, str, str]) -> dict:
    """As GraphBackend.eligibility: a change or renewal of an eligibility ARM does not have
    assigns it instead."""
    arm = get_arm()
    request_type = ELIGIBILITY_ACTIONS[operation][0].upper() + ELIGIBILITY_ACTIONS[operation][1:]
    if request_type == "AdminRemove":
        reason = eligible.get_end_reason_display() or "Removed"
        return arm_schedule_request(
            arm,
            request_type=request_type,
            target=target,
            justification=justification_for(reason, eligible),
            collection=ELIGIBILITY_REQUESTS,
        )
    verb = {"AdminAssign": "Made eligible", "AdminRenew": "Renewed"}.get(request_type, "Changed")

    def send(arm_request_type: str) -> dict:
        return arm_schedule_request(
            arm,
            request_type=arm_request_type,
            target=target,
            justification=justification_for(verb, eligible),
            schedule_info=_schedule(eligible),
            collection=ELIGIBILITY_REQUESTS,
        )

    result = send(request_type)
    if request_type != "AdminAssign" and result.get("status") == "already removed":
        result = send("AdminAssign")
    return result


def arm_in_force(target: tuple[str, str, str], *, eligible: EligibleAssignment | None = None) -> bool:
    """Is the principal's direct assignment of the role at exactly this scope in ARM's
    schedule instances now? With ``eligible``, its eligibility in the eligibility instances,
    with the portal's end while it is open (as GraphBackend.in_force). One read of each
    page, no in-process retries."""
    principal_id, guid, scope = target
    arm = get_arm()
    path: str = scope_path(scope, ELIGIBILITY_INSTANCES if eligible is not None else ASSIGNMENT_INSTANCES)
    params: dict | None = {"$filter": f"principalId eq {odata_literal(principal_id)}"}
    check_end = eligible is not None and eligibility_open(eligible, timezone.now())
    while path:
        page = arm.get(path, params=params, retries=0)
        for instance in page.get("value", []):
            properties = instance.get("properties") or {}
            if (
                str(properties.get("principalId") or "") == principal_id
                and definition_guid(properties.get("roleDefinitionId")) == guid
                and str(properties.get("scope") or "").lower() == scope.lower()
                and (not check_end or same_end(properties.get("endDateTime"), eligible.ends_at))  # type: ignore[union-attr]
            ):
                return True
        path, params = page.get("nextLink") or "", None
    return False
