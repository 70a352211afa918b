"""Approving and denying requests, and who may decide one now."""

from datetime import datetime

from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from common.db import retry_on_deadlock
from common.text import clean_text
from roles.models import EligibleAssignment
from roles.services import eligible_extend, eligible_renew

from ..models import ActivationRequest, Approval
from .transitions import (
    ActivationError,
    Kind,
    Status,
    _audit,
    _eligibility_applies,
    _ensure_active_user,
    _grant,
    _lock_basis,
    _notify_decided,
    _prefix,
    _require_fresh_mfa,
    _transition,
)


@retry_on_deadlock
def activation_approve(
    *,
    approver: User,
    request: ActivationRequest,
    reason: str = "",
    mfa_verified_at: datetime | None,
    now: datetime | None = None,
) -> ActivationRequest:
    """Record one approval; the last one needed grants the request."""
    now = now or timezone.now()
    reason = clean_text(reason, field="reason")
    with transaction.atomic():
        request = _lock_for_decision(request.pk, approver, mfa_verified_at, now)
        Approval.objects.create(
            request=request,
            approver=approver,
            decision=Approval.Decision.APPROVE,
            reason=reason,
            mfa_verified_at=mfa_verified_at,
            decided_at=now,
        )
        approvals = request.approvals.filter(decision=Approval.Decision.APPROVE).count()
        granted = approvals >= request.approvals_required
        if granted:
            request.decided_by, request.decided_at, request.decision_reason = approver, now, reason
            _apply_approved(request, now)
        _audit(
            request,
            "activation.approved" if request.kind == Kind.ACTIVATE else f"{request.kind}.approved",
            approver,
            now,
            details={
                "reason": reason,
                "approvals": approvals,
                "required": request.approvals_required,
                "granted": granted,
            },
        )
        if granted:
            _notify_decided(request, now)
    return request


@retry_on_deadlock
def activation_deny(
    *,
    approver: User,
    request: ActivationRequest,
    reason: str,
    mfa_verified_at: datetime | None,
    now: datetime | None = None,
) -> ActivationRequest:
    """One denial ends the request; a reason is required."""
    now = now or timezone.now()
    reason = clean_text(reason, field="reason", required=True)
    with transaction.atomic():
        request = _lock_for_decision(request.pk, approver, mfa_verified_at, now)
        Approval.objects.create(
            request=request,
            approver=approver,
            decision=Approval.Decision.DENY,
            reason=reason,
            mfa_verified_at=mfa_verified_at,
            decided_at=now,
        )
        request.decided_by, request.decided_at, request.decision_reason = approver, now, reason
        _transition(request, Status.DENIED, now)
        _audit(request, f"{_prefix(request)}.denied", approver, now, details={"reason": reason})
        _notify_decided(request, now)
    return request


def activation_decider_check(*, approver: User, request: ActivationRequest) -> None:
    """Raise PermissionDenied if the person may never decide this request."""
    if request.requester_id == approver.pk:
        raise PermissionDenied("You cannot decide your own request.")
    if not request.approvers.filter(user=approver).exists():
        raise PermissionDenied("You are not an approver of this request.")


def activation_decision_check(*, approver: User, request: ActivationRequest, now: datetime) -> None:
    """Raise why the approver cannot decide the request now. The deciding services run it
    under the row lock; interfaces may run it first so no code is spent on a hopeless try."""
    activation_decider_check(approver=approver, request=request)
    if request.status != Status.PENDING_APPROVAL:
        raise ActivationError(_already_decided_message(request))
    if now >= request.decide_by:
        raise ActivationError("This request has timed out; the requester must ask again.")


def _lock_for_decision(pk, approver: User, mfa_verified_at, now) -> ActivationRequest:
    _require_fresh_mfa(mfa_verified_at, now)
    _lock_basis(pk)
    request = (
        ActivationRequest.objects.select_for_update(of=("self",))
        .select_related("role", "requester")
        .get(pk=pk)
    )
    activation_decider_check(approver=approver, request=request)
    _ensure_active_user(approver, "approve requests")
    activation_decision_check(approver=approver, request=request, now=now)
    # One decision per approver (a denial would have closed the request, so it was an approval).
    if request.approvals.filter(approver=approver).exists():
        raise ActivationError("You have already approved this request; another approver must decide.")
    return request


def _already_decided_message(request: ActivationRequest) -> str:
    who = f" by {request.decided_by}" if request.decided_by_id else ""
    when = f" at {request.decided_at:%Y-%m-%d %H:%M} UTC" if request.decided_at else ""
    return f"This request was already {request.get_status_display().lower()}{who}{when}."


def _apply_approved(request: ActivationRequest, now: datetime) -> None:
    """Carry out an approved request, with the eligibility re-checked as it is now."""
    eligible = (
        EligibleAssignment.objects.select_for_update(of=("self",))
        .select_related("role")
        .get(pk=request.eligible_id)
    )
    if request.kind == Kind.ACTIVATE:
        if not _eligibility_applies(eligible, request.requester, now):
            raise ActivationError(
                "The requester is no longer eligible for this role; the request cannot be approved."
            )
        _grant(request, now, eligible=eligible)
        return
    if request.kind == Kind.EXTEND:
        if not eligible.is_current(now):
            raise ActivationError("The eligibility ended meanwhile; ask for a renewal instead.")
        eligible_extend(
            actor=None, assignment=eligible, ends_at=max(eligible.ends_at, now) + request.duration, now=now
        )
    else:
        eligible_renew(actor=None, assignment=eligible, ends_at=now + request.duration, now=now)
    _transition(request, Status.GRANTED, now)
