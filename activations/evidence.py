"""One activation's evidence: request → approvals (who, when, MFA) → start → end → directory.

Built from the request's own rows (what it is now) and from its audit events (what happened,
each step citing the event that records it). Four queries whatever the history's length.
"""

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.db.models import Q
from django.http import Http404
from django.urls import reverse

from accounts.models import User
from audit.models import AuditEvent
from roles.models import ActiveAssignment

from .models import ActivationRequest, Approval

# The target types under which audit events record a request and its assignment.
REQUEST_TARGET = ActivationRequest._meta.label_lower
ACTIVE_ASSIGNMENT_TARGET = ActiveAssignment._meta.label_lower

Status = ActivationRequest.Status
ENDINGS = (Status.EXPIRED, Status.DEACTIVATED, Status.REVOKED)
CLOSINGS = (Status.CANCELED, Status.TIMED_OUT)


@dataclass(frozen=True)
class Step:
    """One line of the timeline. state: done, failed, pending (not yet) or skipped."""

    title: str
    at: datetime | None = None
    by: str = ""
    notes: Sequence[tuple[str, object]] = field(default_factory=list)
    event: AuditEvent | None = None
    state: str = "done"


@dataclass(frozen=True)
class Evidence:
    request: ActivationRequest
    approvers: list
    approvals: list
    events: list
    steps: list[Step]


def evidence_url(target_id: str) -> str:
    """The evidence page of the request an audit event names by id, or "" (not an id)."""
    try:
        pk = uuid.UUID(target_id)
    except ValueError:
        return ""
    return reverse("evidence:activation", args=[pk])


def activation_evidence(*, pk) -> Evidence:
    request = (
        ActivationRequest.objects.select_related("requester", "role", "decided_by", "active_assignment")
        .filter(pk=pk)
        .first()
    )
    if request is None:
        raise Http404("No such activation request.")
    approvals = list(request.approvals.select_related("approver").order_by("decided_at"))
    approvers = list(User.objects.filter(pk__in=request.approvers.values("user_id")).order_by("username"))
    about = Q(target_type=REQUEST_TARGET, target_id=str(request.pk))
    if request.active_assignment_id is not None:
        about |= Q(target_type=ACTIVE_ASSIGNMENT_TARGET, target_id=str(request.active_assignment_id))
    events = list(AuditEvent.objects.filter(about).order_by("seq"))
    return Evidence(request, approvers, approvals, events, _steps(request, approvals, events))


def _steps(request: ActivationRequest, approvals: list[Approval], events: list[AuditEvent]) -> list[Step]:
    steps = [_requested(request, events)]
    steps += _approval_steps(request, approvals, events)
    if request.status in CLOSINGS:
        steps.append(_closed(request, events))
    if request.granted_at is not None:
        steps.append(_started(request, events))
        steps.append(_ended(request, events))
    if request.active_assignment_id is not None:
        steps += _directory_steps(request, events)
    return steps


def _requested(request: ActivationRequest, events: list[AuditEvent]) -> Step:
    ticket = f"{request.ticket_system} {request.ticket_number}".strip()
    notes = [
        ("Role", request.role.name),
        ("Scope", request.scope),
        ("Duration", _duration(request.duration)),
        ("Justification", request.justification or "—"),
        ("Ticket", ticket or "—"),
        ("MFA verified at", request.mfa_verified_at or "not verified (not required)"),
    ]
    event = _first(events, ".requested") or _first(events, ".granted")
    return Step("Requested", request.created_at, request.requester.label, notes, event)


def _approval_steps(
    request: ActivationRequest, approvals: list[Approval], events: list[AuditEvent]
) -> list[Step]:
    if request.approvals_required == 0:
        return [
            Step(
                "Approval", notes=[("Required", "no: the role's settings do not ask for it")], state="skipped"
            )
        ]
    steps = []
    for approval in approvals:
        verb = "Approved" if approval.decision == Approval.Decision.APPROVE else "Denied"
        event = next(
            (
                e
                for e in events
                if e.action.endswith(f".{verb.lower()}") and e.actor_id == approval.approver_id
            ),
            None,
        )
        notes = [("MFA verified at", approval.mfa_verified_at), ("Reason", approval.reason or "—")]
        state = "done" if verb == "Approved" else "failed"
        steps.append(Step(verb, approval.decided_at, approval.approver.label, notes, event, state))
    if request.status == Status.PENDING_APPROVAL:
        granted = sum(approval.decision == Approval.Decision.APPROVE for approval in approvals)
        notes = [
            ("Approvals", f"{granted} of {request.approvals_required}"),
            ("Decide by", request.decide_by),
        ]
        steps.append(Step("Waiting for approval", notes=notes, state="pending"))
    return steps


def _closed(request: ActivationRequest, events: list[AuditEvent]) -> Step:
    event = _last(events, f".{request.status}")
    return Step(
        request.get_status_display(),
        request.closed_at,
        event.actor_label if event else "",
        _reason(event),
        event,
        "failed",
    )


def _started(request: ActivationRequest, events: list[AuditEvent]) -> Step:
    assignment = request.active_assignment
    event = _first(events, ".granted") or next(
        (e for e in events if e.action.endswith(".approved") and _detail(e, "granted")), None
    )
    notes = [("Until (as granted)", request.ends_at)]
    if assignment is not None:
        notes = [("From", assignment.starts_at), ("Until (as granted)", assignment.ends_at)]
    return Step("Granted: active", request.granted_at, event.actor_label if event else "", notes, event)


def _ended(request: ActivationRequest, events: list[AuditEvent]) -> Step:
    if request.status not in ENDINGS:
        if request.kind != ActivationRequest.Kind.ACTIVATE:
            return Step(
                "Eligibility changed", request.closed_at, notes=[("Kind", request.get_kind_display())]
            )
        return Step("Ends", request.ends_at, notes=[("Status", "active until then")], state="pending")
    event = _last(events, f".{request.status}")
    by = event.actor_label if event else ""
    return Step(request.get_status_display(), request.closed_at, by, _reason(event), event)


def _directory_steps(request: ActivationRequest, events: list[AuditEvent]) -> list[Step]:
    steps = []
    for event in events:
        if event.action.startswith("directory."):
            operation, _, result = event.action.removeprefix("directory.").partition("_")
            notes = [("Attempts", _detail(event, "attempts") or "—")]
            state = "done" if result == "confirmed" else "failed"
            steps.append(Step(f"Directory: {operation} {result}", event.occurred_at, "", notes, event, state))
    wanted = ["grant"] + (["revoke"] if request.status in ENDINGS else [])
    for operation in wanted:
        if not any(step.title == f"Directory: {operation} confirmed" for step in steps):
            steps.append(
                Step(f"Directory: {operation}", notes=[("Status", "not confirmed yet")], state="pending")
            )
    return steps


def _reason(event: AuditEvent | None) -> list[tuple[str, object]]:
    if event is None:
        return []
    reason = _detail(event, "reason") or _detail(event, "because")
    return [("Reason", reason)] if reason else []


def _detail(event: AuditEvent, key: str):
    """One value from an event's details (a dict when audit_record wrote it)."""
    return event.details.get(key) if isinstance(event.details, dict) else None


def _duration(value) -> str:
    minutes = int(value.total_seconds() // 60)
    hours, minutes = divmod(minutes, 60)
    return (
        " ".join(
            part for part in (f"{hours} h" if hours else "", f"{minutes} min" if minutes else "") if part
        )
        or "0 min"
    )


def _first(events: list[AuditEvent], suffix: str) -> AuditEvent | None:
    return next((event for event in events if event.action.endswith(suffix)), None)


def _last(events: list[AuditEvent], suffix: str) -> AuditEvent | None:
    return next((event for event in reversed(events) if event.action.endswith(suffix)), None)
