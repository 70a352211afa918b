"""Activation requests: one service per transition (SPEC 2.3, 2.4).

Each locks the request, re-checks the live state (status, eligibility, policy, who is acting),
moves it along ActivationRequest.TRANSITIONS, writes one audit event and queues the emails,
all in one transaction.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record
from common.text import clean_text
from notifications.services import email_queue
from roles.models import ActiveAssignment, EligibleAssignment, RoleSettings
from roles.scopes import scope_covers, scope_validate
from roles.services import (
    active_assignment_create_for_activation,
    active_assignment_end,
    active_assignments_end,
    role_approver_candidates,
)

from .models import ActivationRequest, Approval, RequestApprover, TransitionNotAllowed

Status = ActivationRequest.Status
Kind = ActivationRequest.Kind

# A requester may schedule an activation this far ahead at most.
MAX_SCHEDULE_AHEAD = timedelta(days=30)
# Self-service windows (Entra): extend when the eligibility ends within 14 days, renew when it
# ended within the last 30 days.
EXTEND_WINDOW = timedelta(days=14)
RENEW_WINDOW = timedelta(days=30)


class ActivationError(ValidationError):
    """A request refused for a reason the person can act on (shown as is)."""


# --- Requesting ----------------------------------------------------------------------------


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
    now: datetime | None = None,
) -> ActivationRequest:
    """Ask to activate an eligible role: granted at once, or pending approval."""
    now = now or timezone.now()
    _ensure_active_user(requester, "request roles")
    justification = clean_text(justification, field="justification")
    ticket_number = clean_text(ticket_number, field="ticket_number", max_length=100)
    ticket_system = clean_text(ticket_system, field="ticket_system", max_length=100)
    try:
        with transaction.atomic():
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
                created_at=now,
            )
            if role_settings.require_approval:
                request.decide_by = now + role_settings.approval_timeout
                request.approvals_required = role_settings.approvals_required
                request.save()
                _freeze_approvers(request, role_settings)
                _audit(request, "activation.requested", requester, now)
                _notify(request, "approval-request", request_approvers(request), now, with_links=True)
            else:
                _grant(request, now, eligible=eligible)  # saves the new request as granted
                _audit(request, "activation.granted", requester, now, details={"approval": "not required"})
                _notify_granted(request, now)
    except IntegrityError as error:
        # The database's one-open-activation constraint caught a concurrent duplicate.
        if "activations_request_one_open_activation" not in str(error):
            raise
        raise ActivationError("You already have an open activation of this role at this scope.") from None
    return request


def _lock_eligibility(pk, requester: User, now: datetime) -> EligibleAssignment:
    eligible = (
        EligibleAssignment.objects.select_for_update(of=("self",))
        .select_related("role", "group")
        .filter(pk=pk)
        .first()
    )
    if eligible is None or not _eligibility_applies(eligible, requester, now):
        raise ActivationError("You are not eligible for this role (any more).")
    return eligible


def _eligibility_applies(eligible: EligibleAssignment, user: User, now: datetime) -> bool:
    # A recorded removal is final even if `now` was read just before it committed (a decision
    # racing eligible_remove): the locked row is the live state.
    if eligible.ended_at is not None or not eligible.is_current(now):
        return False
    if eligible.user_id is not None:
        return eligible.user_id == user.pk
    return eligible.group.members.filter(pk=user.pk).exists()


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
    role_settings, eligible, *, duration, starts_at, now, justification, ticket_number, mfa_verified_at
) -> None:
    errors = {}
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
    if role_settings.require_mfa:
        _require_fresh_mfa(mfa_verified_at, now)


def _close_lapsed(requester: User, role_id, scope: str, now: datetime) -> None:
    """A granted activation past its end is over whether or not the expiry job has run: close
    it now so it does not block a new one."""
    lapsed = ActivationRequest.objects.select_for_update().filter(
        requester=requester,
        role_id=role_id,
        scope=scope,
        kind=Kind.ACTIVATE,
        status=Status.GRANTED,
        ends_at__lte=now,
    )
    for request in lapsed:
        _transition(request, Status.EXPIRED, now)
        # What activation_expire_due does for the rows it closes (it will not see this one).
        active_assignments_end(
            actor=None,
            assignments=[request.active_assignment],
            reason=ActiveAssignment.EndReason.EXPIRED,
            now=now,
        )
        _audit(request, "activation.expired", None, now)


def _ensure_no_open_activation(requester: User, role_id, scope: str) -> None:
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
        raise ActivationError(
            f"{open_request.role} is already active for you at {scope} "
            f"until {open_request.ends_at:%H:%M} UTC."
        )
    raise ActivationError(
        f"You already have a request for {open_request.role} at {scope} waiting for approval."
    )


def _freeze_approvers(request: ActivationRequest, role_settings: RoleSettings) -> None:
    """Resolve the approvers now and keep them with the request; never the requester."""
    candidates = {user for user in role_approver_candidates(role_settings) if user.pk != request.requester_id}
    if len(candidates) < request.approvals_required:
        raise ActivationError(
            f"{role_settings.role} needs {request.approvals_required} approval(s), but nobody other than you "
            "can approve it. Ask an administrator to name approvers for this role."
        )
    RequestApprover.objects.bulk_create([RequestApprover(request=request, user=user) for user in candidates])


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


def _assignment_change_request(kind, requester, eligible, duration, justification, now) -> ActivationRequest:
    now = now or timezone.now()
    _ensure_active_user(requester, "request roles")
    justification = clean_text(justification, field="justification", required=True)
    try:
        with transaction.atomic():
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
                raise ActivationError("You already have a pending request for this eligibility.")
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
                approvals_required=1,
            )
            _freeze_approvers(request, role_settings)
            _audit(request, f"{kind}.requested", requester, now)
            _notify(request, "approval-request", request_approvers(request), now, with_links=True)
    except IntegrityError as error:
        if "activations_request_one_open_extension" not in str(error):
            raise
        raise ActivationError("You already have a pending request for this eligibility.") from None
    return request


def _check_change_window(kind, eligible: EligibleAssignment, now: datetime) -> None:
    if eligible.ended_at is not None and eligible.ended_at <= now and eligible.end_reason != "expired":
        raise ActivationError("This eligibility was removed; it cannot be extended or renewed.")
    if kind == Kind.EXTEND:
        if eligible.ends_at is None or not now < eligible.ends_at <= now + EXTEND_WINDOW:
            raise ActivationError("Only an eligibility ending within the next 14 days can be extended.")
    elif eligible.ends_at is None or not now - RENEW_WINDOW <= eligible.ends_at <= now:
        raise ActivationError("Only an eligibility that ended within the last 30 days can be renewed.")


# --- Deciding ------------------------------------------------------------------------------


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
    from roles.services import eligible_extend, eligible_renew

    if request.kind == Kind.EXTEND:
        if not eligible.is_current(now):
            raise ActivationError("The eligibility ended meanwhile; ask for a renewal instead.")
        eligible_extend(
            actor=None, assignment=eligible, ends_at=max(eligible.ends_at, now) + request.duration, now=now
        )
    else:
        eligible_renew(actor=None, assignment=eligible, ends_at=now + request.duration, now=now)
    _transition(request, Status.GRANTED, now)


def _grant(request: ActivationRequest, now: datetime, eligible: EligibleAssignment | None = None) -> None:
    """Create the active assignment; the clock starts now (or at the scheduled start)."""
    eligible = eligible or request.eligible
    starts_at = max(request.starts_at or now, now)
    ends_at = starts_at + request.duration
    if eligible.ends_at is not None and ends_at > eligible.ends_at:
        ends_at = eligible.ends_at  # never beyond the eligibility
        if ends_at - starts_at < settings.PIM_MIN_ASSIGNMENT_DURATION:
            raise ActivationError("The eligibility ends too soon for this activation.")
    request.active_assignment = active_assignment_create_for_activation(
        eligible=eligible,
        user=request.requester,
        scope=request.scope,
        starts_at=starts_at,
        ends_at=ends_at,
        justification=request.justification,
        now=now,
    )
    request.granted_at = now
    request.ends_at = ends_at
    _transition(request, Status.GRANTED, now)


# --- Ending --------------------------------------------------------------------------------


def activation_cancel(
    *, actor: User, request: ActivationRequest, now: datetime | None = None
) -> ActivationRequest:
    """The requester (or a PIM Administrator) withdraws a pending request."""
    now = now or timezone.now()
    with transaction.atomic():
        request = (
            ActivationRequest.objects.select_for_update(of=("self",))
            .select_related("role")
            .get(pk=request.pk)
        )
        if actor.pk != request.requester_id and not actor.has_perm("roles.manage_active_assignments"):
            raise PermissionDenied("Only the requester or a PIM Administrator can cancel this request.")
        _transition(request, Status.CANCELED, now)
        _audit(request, f"{_prefix(request)}.canceled", actor, now)
        _notify(request, "request-closed", request_approvers(request), now)
    return request


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


def activation_revoke(
    *, actor: User | None, request: ActivationRequest, reason: str, now: datetime | None = None
) -> ActivationRequest:
    """An administrator ends someone's activation now."""
    now = now or timezone.now()
    reason = clean_text(reason, field="reason", required=True)
    if actor is not None and not actor.has_perm("roles.manage_active_assignments"):
        raise PermissionDenied("Only a PIM Administrator can revoke activations.")
    with transaction.atomic():
        request = _lock_granted(request.pk, now)
        _end_granted(request, Status.REVOKED, ActiveAssignment.EndReason.REVOKED, actor, now)
        _audit(request, "activation.revoked", actor, now, details={"reason": reason})
        _notify(request, "activation-revoked", [request.requester], now, extra={"reason": reason})
    return request


def _lock_granted(pk, now: datetime) -> ActivationRequest:
    request = (
        ActivationRequest.objects.select_for_update(of=("self",))
        .select_related("role", "active_assignment")
        .get(pk=pk)
    )
    if request.kind != Kind.ACTIVATE:
        # An approved extension or renewal is done; there is no access of its own to end.
        raise ActivationError("Only an activation can be deactivated or revoked.")
    if request.status == Status.GRANTED and request.ends_at is not None and request.ends_at <= now:
        raise ActivationError("This activation has already ended.")
    return request


def _end_granted(request, status, end_reason, actor, now) -> None:
    _transition(request, status, now)
    assignment = ActiveAssignment.objects.select_for_update().get(pk=request.active_assignment_id)
    active_assignment_end(actor=actor, assignment=assignment, reason=end_reason, now=now)


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
        ActivationRequest.objects.select_for_update()
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


# --- Helpers -------------------------------------------------------------------------------


def _transition(request: ActivationRequest, target: str, now: datetime) -> None:
    if not request.can_become(target):
        raise TransitionNotAllowed(request, Status(target))
    request.status = target
    if target in ActivationRequest.TERMINAL or (target == Status.GRANTED and request.kind != Kind.ACTIVATE):
        request.closed_at = now
    request.save()


def request_approvers(request: ActivationRequest) -> list[User]:
    return list(User.objects.filter(pk__in=request.approvers.values("user_id")))


def _prefix(request: ActivationRequest) -> str:
    return "activation" if request.kind == Kind.ACTIVATE else request.kind


def _audit(request: ActivationRequest, action: str, actor, now, details: dict | None = None) -> None:
    audit_record(
        action=action,
        actor=actor,
        target=request,
        role=request.role,
        scope=request.scope,
        details={
            "requester": request.requester.label,
            "status": request.status,
            "duration_seconds": int(request.duration.total_seconds()),
            "justification": request.justification,
            "ticket": f"{request.ticket_system} {request.ticket_number}".strip(),
            **({"starts_at": request.granted_at, "ends_at": request.ends_at} if request.ends_at else {}),
            **(details or {}),
        },
        at=now,
    )


def _notify(request, template, recipients, now, *, with_links=False, extra=None) -> None:
    from .tokens import approval_link

    if with_links:
        for approver in recipients:
            email_queue(
                recipients=[approver],
                template=template,
                now=now,
                context={"request": request, "link": approval_link(request, approver), **(extra or {})},
            )
        return
    email_queue(
        recipients=recipients, template=template, now=now, context={"request": request, **(extra or {})}
    )


def _notify_granted(request, now) -> None:
    _notify(request, "activation-granted", [request.requester], now)


def _notify_decided(request, now) -> None:
    """The requester hears the outcome; every approver hears who decided."""
    _notify(request, "request-decided", [request.requester, *request_approvers(request)], now)


def _ensure_active_user(user: User, doing: str) -> None:
    # The database, not the caller's copy of the user: a deactivation may have committed since
    # that copy was loaded (re-check who is acting, SPEC 5).
    if not User.objects.filter(pk=user.pk, is_active=True).exists():
        raise PermissionDenied(f"A deactivated account cannot {doing}.")


def _require_fresh_mfa(mfa_verified_at: datetime | None, now: datetime) -> None:
    if mfa_verified_at is None or now - mfa_verified_at > settings.PIM_STEP_UP_WINDOW:
        raise ActivationError({"otp_token": "Enter a fresh code from your authenticator app to continue."})


def _hours(duration: timedelta) -> str:
    hours = duration.total_seconds() / 3600
    return f"{hours:g} hour{'s' if hours != 1 else ''}"
