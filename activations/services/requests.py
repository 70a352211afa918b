"""Asking to activate an eligible role: granted at once, or pending approval."""

import uuid
from datetime import datetime, timedelta
from typing import cast

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from common.db import retry_on_deadlock
from common.text import clean_text
from roles.models import ActiveAssignment, EligibleAssignment, RoleSettings
from roles.scopes import scope_covers, scope_validate
from roles.services import (
    active_assignments_end,
)

from ..models import ActivationRequest
from .transitions import (
    ActivationConflict,
    ActivationError,
    Kind,
    Status,
    _audit,
    _eligibility_applies,
    _ensure_active_user,
    _freeze_approvers,
    _grant,
    _hours,
    _lock_person,
    _notify_approval_request,
    _notify_granted,
    _require_fresh_mfa,
    _require_passkey,
    _transition,
    request_approvers,
)

# A requester may schedule an activation this far ahead at most.
MAX_SCHEDULE_AHEAD = timedelta(days=30)


@retry_on_deadlock
def activation_request(
    *,
    requester: User,
    eligible: EligibleAssignment,
    duration: timedelta,
    justification: str = "",
    ticket_number: str = "",
    ticket_system: str = "",
    scope: str | None = None,
    starts_at: datetime | None = None,
    mfa_verified_at: datetime | None = None,
    mfa_factor: str | None = None,
    now: datetime | None = None,
) -> ActivationRequest:
    """Ask to activate an eligible role: granted at once, or pending approval.

    ``mfa_verified_at`` and ``mfa_factor`` are the requester's last step-up (common.step_up):
    a role whose activation strength is phishing-resistant takes only a passkey's."""
    now = now or timezone.now()
    _ensure_active_user(requester, "request roles")
    justification = clean_text(justification, field="justification")
    ticket_number = clean_text(ticket_number, field="ticket_number", max_length=100)
    ticket_system = clean_text(ticket_system, field="ticket_system", max_length=100)
    try:
        with transaction.atomic():
            if not _lock_person(requester.pk):
                raise PermissionDenied("A deactivated account cannot request roles.")
            eligible = _lock_eligibility(eligible.pk, requester, now)
            role_settings = RoleSettings.objects.select_related("role").get(role_id=eligible.role_id)
            scope = _requested_scope(eligible, scope)
            _check_activation_policy(
                role_settings,
                eligible,
                duration=duration,
                starts_at=starts_at,
                now=now,
                justification=justification,
                ticket_number=ticket_number,
                mfa_verified_at=mfa_verified_at,
                mfa_factor=mfa_factor,
                requester=requester,
            )
            _close_lapsed(requester, eligible.role_id, scope, now)
            _ensure_no_open_activation(requester, eligible.role_id, scope)
            request = ActivationRequest(
                kind=Kind.ACTIVATE,
                requester=requester,
                eligible=eligible,
                role=eligible.role,
                scope=scope,
                status=Status.PENDING_APPROVAL,
                starts_at=starts_at,
                duration=duration,
                justification=justification,
                ticket_number=ticket_number,
                ticket_system=ticket_system,
                mfa_verified_at=mfa_verified_at,
                mfa_factor=(mfa_factor or "") if mfa_verified_at else "",
                created_at=now,
            )
            if role_settings.require_approval:
                request.decide_by = now + role_settings.approval_timeout
                request.approvals_required = role_settings.approvals_required
                request.save()
                _freeze_approvers(request, role_settings)
                _audit(request, "activation.requested", requester, now, details=_factor(request))
                _notify_approval_request(request, request_approvers(request), now)
            else:
                _grant(request, now, eligible=eligible)  # saves the new request as granted
                details = {"approval": "not required", **_factor(request)}
                _audit(request, "activation.granted", requester, now, details=details)
                _notify_granted(request, now)
    except IntegrityError as error:
        # The database's one-open-activation constraint caught a concurrent duplicate.
        if "activations_request_one_open_activation" not in str(error):
            raise
        raise ActivationConflict("You already have an open activation of this role at this scope.") from None
    return request


def _factor(request: ActivationRequest) -> dict[str, str]:
    return {"mfa_factor": request.mfa_factor} if request.mfa_factor else {}


def _lock_eligibility(pk: uuid.UUID, requester: User, now: datetime) -> EligibleAssignment:
    eligible = (
        EligibleAssignment.objects.select_for_update(of=("self",))
        .select_related("role", "group")
        .filter(pk=pk)
        .first()
    )
    if eligible is None or not _eligibility_applies(eligible, requester, now):
        raise ActivationError("You are not eligible for this role (any more).")
    return eligible


def _requested_scope(eligible: EligibleAssignment, scope: str | None) -> str:
    if not scope:
        return eligible.scope
    try:
        scope = scope_validate(scope, kind=eligible.role.kind)
    except ValidationError as error:
        raise ActivationError({"scope": error.messages}) from None
    if not scope_covers(eligible.scope, scope):
        raise ActivationError(
            {"scope": f"You are eligible at {eligible.scope} only; choose that scope or one below it."}
        )
    return scope


def _check_activation_policy(
    role_settings: RoleSettings,
    eligible: EligibleAssignment,
    *,
    duration: timedelta,
    starts_at: datetime | None,
    now: datetime,
    justification: str,
    ticket_number: str,
    mfa_verified_at: datetime | None,
    mfa_factor: str | None,
    requester: User,
) -> None:
    errors: dict[str, str] = {}
    if not isinstance(duration, timedelta) or duration < settings.PIM_MIN_ASSIGNMENT_DURATION:
        errors["duration"] = "An activation lasts at least 5 minutes."
    elif duration > role_settings.activation_max_duration:
        errors["duration"] = (
            f"{role_settings.role} can be activated for at most "
            f"{_hours(role_settings.activation_max_duration)}."
        )
    if starts_at is not None:
        # The only check of a scheduled start: the form and the API pass the value as it came.
        if starts_at < now - timedelta(minutes=1):
            errors["starts_at"] = "A scheduled start cannot be in the past."
        elif starts_at > now + MAX_SCHEDULE_AHEAD:
            errors["starts_at"] = f"A start can be scheduled at most {MAX_SCHEDULE_AHEAD.days} days ahead."
    start = max(starts_at or now, now)
    in_range = "duration" not in errors and "starts_at" not in errors  # no overflow on absurd input
    if eligible.ends_at is not None and in_range and start + duration > eligible.ends_at:
        errors["duration"] = (
            f"Your eligibility ends at {eligible.ends_at:%Y-%m-%d %H:%M} UTC; choose a shorter duration "
            "or ask for an extension."
        )
    if role_settings.require_justification and not justification:
        errors["justification"] = "A justification is required for this role."
    if role_settings.require_ticket and not ticket_number:
        errors["ticket_number"] = "A ticket number is required for this role."
    if errors:
        raise ActivationError(errors)
    if role_settings.activation_needs_passkey:
        why = f"{role_settings.role} needs a passkey to activate"
        _require_passkey(mfa_verified_at, mfa_factor, now, user=requester, why=why)
    elif role_settings.require_mfa:
        _require_fresh_mfa(mfa_verified_at, now)


def _close_lapsed(requester: User, role_id: uuid.UUID, scope: str, now: datetime) -> None:
    """A granted activation past its end is over whether or not the expiry job has run: close
    it now so it does not block a new one."""
    lapsed = ActivationRequest.objects.filter(
        requester=requester,
        role_id=role_id,
        scope=scope,
        kind=Kind.ACTIVATE,
        status=Status.GRANTED,
        ends_at__lte=now,
    )
    # The lock order: the active assignments before their requests.
    list(
        ActiveAssignment.objects.select_for_update(of=("self",))
        .filter(activation_request__in=lapsed)
        .order_by("pk")
        .values_list("pk")
    )
    for request in lapsed.select_for_update().order_by("pk"):
        _transition(request, Status.EXPIRED, now)
        # What activation_expire_due does for the rows it closes (it will not see this one).
        active_assignments_end(
            actor=None,
            # granted: activations_request_granted_has_assignment
            assignments=[cast(ActiveAssignment, request.active_assignment)],
            reason=ActiveAssignment.EndReason.EXPIRED,
            now=now,
        )
        _audit(request, "activation.expired", None, now)


def _ensure_no_open_activation(requester: User, role_id: uuid.UUID, scope: str) -> None:
    open_request = ActivationRequest.objects.filter(
        requester=requester,
        role_id=role_id,
        scope=scope,
        kind=Kind.ACTIVATE,
        status__in=ActivationRequest.OPEN,
    ).first()
    if open_request is None:
        return
    if open_request.status == Status.GRANTED:
        raise ActivationConflict(
            f"{open_request.role} is already active for you at {scope} "
            f"until {open_request.ends_at:%H:%M} UTC."
        )
    raise ActivationConflict(
        f"You already have a request for {open_request.role} at {scope} waiting for approval."
    )
