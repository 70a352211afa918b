"""Asking for one's own eligibility to be extended (ending within 14 days) or renewed
(ended within the last 30 days), approved like an activation."""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from common.db import retry_on_deadlock
from common.text import clean_text
from roles.models import EligibleAssignment, RoleSettings

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


def _assignment_change_request(
    kind: str,
    requester: User,
    eligible: EligibleAssignment,
    duration: timedelta,
    justification: str,
    now: datetime | None,
) -> ActivationRequest:
    now = now or timezone.now()
    _ensure_active_user(requester, "request roles")
    justification = clean_text(justification, field="justification", required=True)
    try:
        with transaction.atomic():
            if not _lock_person(requester.pk):
                raise PermissionDenied("A deactivated account cannot request roles.")
            eligible = (
                EligibleAssignment.objects.select_for_update(of=("self",))
                .select_related("role")
                .get(pk=eligible.pk)
            )
            if eligible.user_id != requester.pk:
                raise ActivationError(
                    "Only your own (not a group's) eligibility can be extended or renewed by you."
                )
            _check_change_window(kind, eligible, now)
            if ActivationRequest.objects.filter(
                requester=requester,
                eligible=eligible,
                kind__in=[Kind.EXTEND, Kind.RENEW],
                status=Status.PENDING_APPROVAL,
            ).exists():
                raise ActivationConflict("You already have a pending request for this eligibility.")
            role_settings = RoleSettings.objects.select_related("role").get(role_id=eligible.role_id)
            if (
                duration < settings.PIM_MIN_ASSIGNMENT_DURATION
                or duration > role_settings.eligible_max_duration
            ):
                raise ActivationError(
                    {
                        "duration": (
                            f"Choose between 5 minutes and {role_settings.eligible_max_duration.days} days."
                        )
                    }
                )
            request = ActivationRequest.objects.create(
                kind=kind,
                requester=requester,
                eligible=eligible,
                role=eligible.role,
                scope=eligible.scope,
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
        if "activations_request_one_open_extension" not in str(error):
            raise
        raise ActivationConflict("You already have a pending request for this eligibility.") from None
    return request


def _check_change_window(kind: str, eligible: EligibleAssignment, now: datetime) -> None:
    if eligible.ended_at is not None and eligible.ended_at <= now and eligible.end_reason != "expired":
        raise ActivationError("This eligibility was removed; it cannot be extended or renewed.")
    if kind == Kind.EXTEND:
        if eligible.ends_at is None or not now < eligible.ends_at <= now + EXTEND_WINDOW:
            raise ActivationError("Only an eligibility ending within the next 14 days can be extended.")
    elif eligible.ends_at is None or not now - RENEW_WINDOW <= eligible.ends_at <= now:
        raise ActivationError("Only an eligibility that ended within the last 30 days can be renewed.")
