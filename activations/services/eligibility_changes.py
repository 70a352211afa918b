"""Asking for one's own eligibility, or one's own direct active assignment, to be extended
(ending within 14 days) or renewed (ended within the last 30 days), approved like an
activation (SPEC 2.2)."""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from common.db import retry_on_deadlock
from common.text import clean_text
from roles.models import ActiveAssignment, EligibleAssignment, RoleSettings

from ..models import ActivationRequest
from .transitions import (
    ActivationConflict,
    ActivationError,
    Kind,
    Status,
    _audit,
    _ensure_active_user,
    _freeze_approvers,
    _lock_person,
    _notify_approval_request,
    request_approvers,
)

# Self-service windows (Entra): extend when the eligibility ends within 14 days, renew when it
# ended within the last 30 days.
EXTEND_WINDOW = timedelta(days=14)

RENEW_WINDOW = timedelta(days=30)

# The database's one-pending-change rules, for eligibilities and for direct active assignments.
OPEN_CHANGE_CONSTRAINTS = (
    "activations_request_one_open_extension",
    "activations_request_one_open_active_change",
)


@retry_on_deadlock
def extension_request(
    *,
    requester: User,
    eligible: EligibleAssignment,
    duration: timedelta,
    justification: str,
    now: datetime | None = None,
) -> ActivationRequest:
    """Ask for an eligibility ending within 14 days to be extended (approved by the role's
    approvers, failing those owners or PIM Administrators)."""
    return _assignment_change_request(Kind.EXTEND, requester, eligible, duration, justification, now)


@retry_on_deadlock
def renewal_request(
    *,
    requester: User,
    eligible: EligibleAssignment,
    duration: timedelta,
    justification: str,
    now: datetime | None = None,
) -> ActivationRequest:
    """Ask for an eligibility that ended within the last 30 days to be granted again."""
    return _assignment_change_request(Kind.RENEW, requester, eligible, duration, justification, now)


@retry_on_deadlock
def active_extension_request(
    *,
    requester: User,
    assignment: ActiveAssignment,
    duration: timedelta,
    justification: str,
    now: datetime | None = None,
) -> ActivationRequest:
    """Ask for one's own direct active assignment ending within 14 days to be extended
    (approved like an eligibility's extension; an activation is not extended: activate again)."""
    return _assignment_change_request(Kind.EXTEND, requester, assignment, duration, justification, now)


@retry_on_deadlock
def active_renewal_request(
    *,
    requester: User,
    assignment: ActiveAssignment,
    duration: timedelta,
    justification: str,
    now: datetime | None = None,
) -> ActivationRequest:
    """Ask for one's own direct active assignment that ended within the last 30 days to be
    granted again."""
    return _assignment_change_request(Kind.RENEW, requester, assignment, duration, justification, now)


def _assignment_change_request(
    kind: str,
    requester: User,
    target: EligibleAssignment | ActiveAssignment,
    duration: timedelta,
    justification: str,
    now: datetime | None,
) -> ActivationRequest:
    now = now or timezone.now()
    _ensure_active_user(requester, "request roles")
    justification = clean_text(justification, field="justification", required=True)
    model = type(target)
    what = "eligibility" if model is EligibleAssignment else "active assignment"
    field = "eligible" if model is EligibleAssignment else "active_target"
    try:
        with transaction.atomic():
            if not _lock_person(requester.pk):
                raise PermissionDenied("A deactivated account cannot request roles.")
            target = model.objects.select_for_update(of=("self",)).select_related("role").get(pk=target.pk)
            if target.user_id != requester.pk:
                raise ActivationError(
                    f"Only your own (not a group's) {what} can be extended or renewed by you."
                )
            if isinstance(target, ActiveAssignment) and target.origin != ActiveAssignment.Origin.DIRECT:
                raise ActivationError("An activation cannot be extended or renewed: activate the role again.")
            _check_change_window(kind, target, now, what)
            if ActivationRequest.objects.filter(
                requester=requester,
                **{field: target},
                kind__in=[Kind.EXTEND, Kind.RENEW],
                status=Status.PENDING_APPROVAL,
            ).exists():
                raise ActivationConflict(f"You already have a pending request for this {what}.")
            role_settings = RoleSettings.objects.select_related("role").get(role_id=target.role_id)
            longest = (
                role_settings.eligible_max_duration
                if model is EligibleAssignment
                else role_settings.active_max_duration
            )
            if duration < settings.PIM_MIN_ASSIGNMENT_DURATION or duration > longest:
                raise ActivationError({"duration": f"Choose between 5 minutes and {longest.days} days."})
            request = ActivationRequest.objects.create(
                kind=kind,
                requester=requester,
                **{field: target},
                role=target.role,
                scope=target.scope,
                status=Status.PENDING_APPROVAL,
                duration=duration,
                justification=justification,
                created_at=now,
                decide_by=now + role_settings.approval_timeout,
                approvals_required=role_settings.approvals_required,
            )
            _freeze_approvers(request, role_settings)
            _audit(request, f"{kind}.requested", requester, now)
            _notify_approval_request(request, request_approvers(request), now)
    except IntegrityError as error:
        if not any(name in str(error) for name in OPEN_CHANGE_CONSTRAINTS):
            raise
        raise ActivationConflict(f"You already have a pending request for this {what}.") from None
    return request


def _check_change_window(
    kind: str, target: EligibleAssignment | ActiveAssignment, now: datetime, what: str = "eligibility"
) -> None:
    if target.ended_at is not None and target.ended_at <= now and target.end_reason != "expired":
        raise ActivationError(f"This {what} was removed; it cannot be extended or renewed.")
    if kind == Kind.EXTEND:
        if target.ends_at is None or not now < target.ends_at <= now + EXTEND_WINDOW:
            raise ActivationError(f"Only an {what} ending within the next 14 days can be extended.")
    elif target.ends_at is None or not now - RENEW_WINDOW <= target.ends_at <= now:
        raise ActivationError(f"Only an {what} that ended within the last 30 days can be renewed.")
