"""Ending requests and activations: cancel, deactivate, revoke, and what happens when
roles or accounts end them (an ended assignment, a deactivated requester)."""

import uuid
from datetime import datetime
from typing import cast

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.refusals import audit_permission_denied
from common.db import retry_on_deadlock
from common.text import clean_text
from roles.models import ActiveAssignment
from roles.services import (
    active_assignment_end,
)

from ..models import ActivationRequest
from .transitions import (
    ActivationConflict,
    ActivationError,
    Kind,
    Status,
    _audit,
    _lock_person,
    _notify,
    _prefix,
    _transition,
    request_approvers,
)


@retry_on_deadlock
def activation_cancel(
    *, actor: User, request: ActivationRequest, now: datetime | None = None
) -> ActivationRequest:
    """The requester (or a PIM Administrator) withdraws a pending request."""
    now = now or timezone.now()
    # Who asked never changes, so this needs no lock (and its audit event no transaction).
    if actor.pk != request.requester_id and not actor.has_perm("roles.manage_active_assignments"):
        raise audit_permission_denied(
            actor=actor,
            attempted="activation_cancel",
            permission="roles.manage_active_assignments",
            target=request,
            role=request.role,
            message="Only the requester or a PIM Administrator can cancel this request.",
        )
    with transaction.atomic():
        _lock_person(request.requester_id)  # the lock order: the requester, then the request
        request = (
            ActivationRequest.objects.select_for_update(of=("self",))
            .select_related("role")
            .get(pk=request.pk)
        )
        _transition(request, Status.CANCELED, now)
        _audit(request, f"{_prefix(request)}.canceled", actor, now)
        _notify(request, "request-closed", request_approvers(request), now)
    return request


@retry_on_deadlock
def activation_deactivate(
    *, requester: User, request: ActivationRequest, now: datetime | None = None
) -> ActivationRequest:
    """The requester ends their activation early."""
    now = now or timezone.now()
    with transaction.atomic():
        request = _lock_granted(request.pk, now)
        if request.requester_id != requester.pk:
            raise PermissionDenied("Only the requester can deactivate this activation.")
        _end_granted(request, Status.DEACTIVATED, ActiveAssignment.EndReason.DEACTIVATED, requester, now)
        _audit(request, "activation.deactivated", requester, now)
    return request


@retry_on_deadlock
def activation_revoke(
    *, actor: User | None, request: ActivationRequest, reason: str, now: datetime | None = None
) -> ActivationRequest:
    """An administrator ends someone's activation now."""
    now = now or timezone.now()
    reason = clean_text(reason, field="reason", required=True)
    if actor is not None and not actor.has_perm("roles.manage_active_assignments"):
        raise audit_permission_denied(
            actor=actor,
            attempted="activation_revoke",
            permission="roles.manage_active_assignments",
            target=request,
            role=request.role,
            message="Only a PIM Administrator can revoke activations.",
        )
    with transaction.atomic():
        request = _lock_granted(request.pk, now)
        _end_granted(request, Status.REVOKED, ActiveAssignment.EndReason.REVOKED, actor, now)
        _audit(request, "activation.revoked", actor, now, details={"reason": reason})
        _notify(request, "activation-revoked", [request.requester], now, extra={"reason": reason})
    return request


def _lock_granted(pk: uuid.UUID, now: datetime) -> ActivationRequest:
    """Lock the activation's assignment, then the request (the lock order: roles and
    eligible_remove end the assignment first and close the request from there)."""
    assignment_id = (
        ActivationRequest.objects.filter(pk=pk).values_list("active_assignment_id", flat=True).first()
    )
    _lock_assignment(assignment_id)
    request = (
        ActivationRequest.objects.select_for_update(of=("self",))
        .select_related("role", "active_assignment")
        .get(pk=pk)
    )
    if request.active_assignment_id != assignment_id:
        # Granted between the two reads (the assignment is set once, at the grant): this one
        # lock comes after the request's, a rare cycle the retry takes care of.
        _lock_assignment(request.active_assignment_id)
    if request.kind != Kind.ACTIVATE:
        # An approved extension or renewal is done; there is no access of its own to end.
        raise ActivationError("Only an activation can be deactivated or revoked.")
    if request.status == Status.GRANTED and request.ends_at is not None and request.ends_at <= now:
        raise ActivationConflict("This activation has already ended.")
    return request


def _lock_assignment(pk: uuid.UUID | None) -> None:
    if pk is not None:
        list(ActiveAssignment.objects.select_for_update().filter(pk=pk).values_list("pk"))


def _end_granted(
    request: ActivationRequest, status: str, end_reason: str, actor: User | None, now: datetime
) -> None:
    _transition(request, status, now)
    # activations_request_granted_has_assignment; locked by _lock_granted
    assignment = ActiveAssignment.objects.get(pk=cast(uuid.UUID, request.active_assignment_id))
    active_assignment_end(actor=actor, assignment=assignment, reason=end_reason, now=now)


def activation_requests_lock_for_assignments(*, assignments: list[ActiveAssignment]) -> None:
    """Roles is about to end these assignments: lock the requests behind them now, before any
    audit event of the transaction (the lock order; activation_close_for_ended_assignment
    then closes them)."""
    list(
        ActivationRequest.objects.select_for_update()
        .filter(active_assignment__in=[assignment.pk for assignment in assignments])
        .order_by("pk")
        .values_list("pk")
    )


def activation_close_for_ended_assignment(
    *, assignment: ActiveAssignment, actor: User | None, reason: str, now: datetime
) -> None:
    """The active assignment behind a granted activation was ended from roles (an admin
    removed it, the eligibility was removed, a review denied it): close the request too."""
    request = ActivationRequest.objects.select_for_update().filter(active_assignment=assignment).first()
    if request is None or request.status != Status.GRANTED:
        return  # not an activation, or this app ended it itself
    target = Status.DEACTIVATED if reason == ActiveAssignment.EndReason.DEACTIVATED else Status.REVOKED
    _transition(request, target, now)
    _audit(request, f"activation.{target}", actor, now, details={"because": f"assignment {reason}"})


def activation_requests_cancel_for_user(*, user: User, now: datetime | None = None) -> int:
    """A deactivated user's pending requests are canceled (SPEC 2.4)."""
    now = now or timezone.now()
    pending = (
        ActivationRequest.objects.select_for_update(of=("self",))
        .select_related("role")
        .filter(requester=user, status=Status.PENDING_APPROVAL)
    )
    count = 0
    for request in pending:
        _transition(request, Status.CANCELED, now)
        _audit(
            request, f"{_prefix(request)}.canceled", None, now, details={"because": "requester deactivated"}
        )
        _notify(request, "request-closed", request_approvers(request), now)
        count += 1
    return count
