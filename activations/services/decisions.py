"""Approving and denying requests, and who may decide one now.

Decisions re-check the live policy (README "Decisions re-check the live policy"): under the
request's row lock, the role's settings are read as they are now, not as they were when the
request was made:

- the duration is cut to the role's current maximum (the approver is told, the audit event
  and the request's requested_duration keep what was asked for);
- the approvals needed are the role's current number (one once approval is no longer
  required: an approver still decides, nothing is granted without a decision);
- an activation asked without an MFA check, a justification or a ticket that the role now
  requires cannot be approved: it can be denied, and the requester must ask again;
- the approvers are the role's current ones: whoever was removed can no longer decide
  (refused, audited), and whoever was added joins the request's frozen approvers and gets the
  approval-request email;
- the eligibility must still hold (as before).
"""

import uuid
from datetime import datetime, timedelta
from typing import cast

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.refusals import audit_refusal
from common.db import retry_on_deadlock
from common.step_up import PHISHING_RESISTANT_FACTORS
from common.text import clean_text
from roles.models import ActiveAssignment, EligibleAssignment, Role, RoleSettings
from roles.services import (
    active_extend,
    active_renew,
    eligible_extend,
    eligible_renew,
    role_approver_candidates,
)

from ..models import ActivationRequest, Approval, RequestApprover
from .transitions import (
    ActivationError,
    Kind,
    Status,
    _audit,
    _eligibility_applies,
    _ensure_active_user,
    _grant,
    _hours,
    _lock_basis,
    _notify_approval_request,
    _notify_decided,
    _prefix,
    _require_fresh_mfa,
    _require_passkey,
    _transition,
)


@retry_on_deadlock
def activation_approve(
    *,
    approver: User,
    request: ActivationRequest,
    reason: str = "",
    mfa_verified_at: datetime | None,
    mfa_factor: str | None = None,
    now: datetime | None = None,
) -> ActivationRequest:
    """Record one approval; the last one needed grants the request. ``mfa_verified_at`` and
    ``mfa_factor`` are the approver's last step-up (common.step_up): approving a role whose
    approval strength is phishing-resistant takes a passkey's."""
    now = now or timezone.now()
    reason = clean_text(reason, field="reason")
    activation_decider_check(approver=approver, request=request, decision=Approval.Decision.APPROVE)
    with transaction.atomic():
        request = _lock_for_decision(request.pk, approver, mfa_verified_at, now)
        role_settings = _role_settings(request)
        live = _live_approvers(request, role_settings)
        _approvers_join(request, live, now)
        refusal = _standing_refusal(request, approver, live)
        if refusal is None:
            if role_settings.approval_needs_passkey:
                why = f"Approving requests for {request.role} needs a passkey"
                _require_passkey(mfa_verified_at, mfa_factor, now, user=approver, why=why)
            _approvals_needed(request, role_settings)
            _check_live_requirements(request, role_settings)
            capped = _cap_duration(request, role_settings, now)
            _approve(request, approver, reason, (mfa_verified_at, mfa_factor), now, capped)
    if refusal is not None:
        raise _refused(request, approver, Approval.Decision.APPROVE, refusal)
    return request


@retry_on_deadlock
def activation_deny(
    *,
    approver: User,
    request: ActivationRequest,
    reason: str,
    mfa_verified_at: datetime | None,
    mfa_factor: str | None = None,
    now: datetime | None = None,
) -> ActivationRequest:
    """One denial ends the request; a reason is required. Any fresh MFA will do, whatever the
    role's approval strength: a denial grants nothing."""
    now = now or timezone.now()
    reason = clean_text(reason, field="reason", required=True)
    activation_decider_check(approver=approver, request=request, decision=Approval.Decision.DENY)
    with transaction.atomic():
        request = _lock_for_decision(request.pk, approver, mfa_verified_at, now)
        live = _live_approvers(request, _role_settings(request))
        refusal = _standing_refusal(request, approver, live)
        if refusal is None:
            Approval.objects.create(
                request=request,
                approver=approver,
                decision=Approval.Decision.DENY,
                reason=reason,
                mfa_verified_at=cast(datetime, mfa_verified_at),  # _lock_for_decision refuses None
                mfa_factor=mfa_factor or "",
                decided_at=now,
            )
            request.decided_by, request.decided_at, request.decision_reason = approver, now, reason
            _transition(request, Status.DENIED, now)
            _audit(request, f"{_prefix(request)}.denied", approver, now, details={"reason": reason})
            _notify_decided(request, now)
        else:
            # Someone current must be able to decide instead: bring the approvers up to date.
            _approvers_join(request, live, now)
    if refusal is not None:
        raise _refused(request, approver, Approval.Decision.DENY, refusal)
    return request


def activation_decider_check(*, approver: User, request: ActivationRequest, decision: str = "") -> None:
    """Raise PermissionDenied if the person may never decide this request: the requester, or
    someone who is not one of its approvers. Each refusal leaves an audit event
    (<kind>.self_approval_refused or <kind>.decision_refused) in its own transaction,
    rate-limited per person (audit.refusals): call it outside any transaction."""
    problem = _decider_problem(approver, request)
    if problem is None:
        return
    action, why, message = problem
    audit_refusal(
        action=f"{_prefix(request)}.{action}",
        actor=approver,
        target=request,
        role=request.role,
        scope=request.scope,
        details={
            "why": why,
            "requester": request.requester.label,
            **({"decision": decision} if decision else {}),
        },
    )
    raise PermissionDenied(message)


def activation_decision_check(*, approver: User, request: ActivationRequest, now: datetime) -> None:
    """Raise why the approver cannot decide the request now. The deciding services run it
    under the row lock; interfaces may run it first so no code is spent on a hopeless try."""
    activation_decider_check(approver=approver, request=request)
    _check_open(request, now)


def _decider_problem(approver: User, request: ActivationRequest) -> tuple[str, str, str] | None:
    if request.requester_id == approver.pk:
        return "self_approval_refused", "requester", "You cannot decide your own request."
    if not request.approvers.filter(user=approver).exists():
        return "decision_refused", "not an approver", "You are not an approver of this request."
    return None


def _check_open(request: ActivationRequest, now: datetime) -> None:
    if request.status != Status.PENDING_APPROVAL:
        raise ActivationError(_already_decided_message(request))
    if now >= cast(datetime, request.decide_by):  # pending: activations_request_pending_has_deadline
        raise ActivationError("This request has timed out; the requester must ask again.")


def _lock_for_decision(
    pk: uuid.UUID, approver: User, mfa_verified_at: datetime | None, now: datetime
) -> ActivationRequest:
    _require_fresh_mfa(mfa_verified_at, now)
    _lock_basis(pk)
    request = (
        ActivationRequest.objects.select_for_update(of=("self",))
        .select_related("role", "requester")
        .get(pk=pk)
    )
    if problem := _decider_problem(approver, request):  # checked (and audited) before the lock
        raise PermissionDenied(problem[2])
    _ensure_active_user(approver, "approve requests")
    _check_open(request, now)
    # One decision per approver (a denial would have closed the request, so it was an approval).
    if request.approvals.filter(approver=approver).exists():
        raise ActivationError("You have already approved this request; another approver must decide.")
    return request


def _already_decided_message(request: ActivationRequest) -> str:
    who = f" by {request.decided_by}" if request.decided_by_id else ""
    when = f" at {request.decided_at:%Y-%m-%d %H:%M} UTC" if request.decided_at else ""
    return f"This request was already {request.get_status_display().lower()}{who}{when}."


# --- The live policy ---------------------------------------------------------------------------


def activation_approvers_refresh(*, role: Role, now: datetime | None = None) -> int:
    """After the role's settings changed: the approvers added since join each pending request
    of the role and are asked to decide it (the change's own transaction has committed; each
    request is locked on its own). Returns how many requests gained approvers."""
    now = now or timezone.now()
    pending = ActivationRequest.objects.filter(role=role, status=Status.PENDING_APPROVAL, decide_by__gt=now)
    refreshed = 0
    for pk in pending.values_list("pk", flat=True):
        with transaction.atomic():
            request = (
                ActivationRequest.objects.select_for_update(of=("self",))
                .select_related("role", "requester")
                .get(pk=pk)
            )
            if request.status == Status.PENDING_APPROVAL and now < cast(datetime, request.decide_by):
                refreshed += _approvers_join(request, _live_approvers(request, _role_settings(request)), now)
    return refreshed


def _role_settings(request: ActivationRequest) -> RoleSettings:
    # Read, not locked: the request's row lock orders this decision, and a settings change that
    # commits after this read comes after it (the lock order stays the one the services share).
    return RoleSettings.objects.select_related("role").get(role_id=request.role_id)


def _live_approvers(request: ActivationRequest, role_settings: RoleSettings) -> dict[int, User]:
    """Who may approve the request now, by id: the role's approvers as they are now (named,
    failing those its owners, failing those the PIM Administrators), never the requester."""
    return {
        user.pk: user for user in role_approver_candidates(role_settings) if user.pk != request.requester_id
    }


def _approvers_join(request: ActivationRequest, live: dict[int, User], now: datetime) -> int:
    """The role's approvers added since the request was made join its frozen approvers and get
    the approval-request email (those removed stay on it, for the record, but may not decide)."""
    frozen = set(request.approvers.values_list("user_id", flat=True))
    added = [user for pk, user in live.items() if pk not in frozen]
    if not added:
        return 0
    RequestApprover.objects.bulk_create([RequestApprover(request=request, user=user) for user in added])
    _audit(
        request,
        f"{_prefix(request)}.approvers_added",
        None,
        now,
        details={"added": sorted(user.label for user in added), "because": "the role's approvers changed"},
    )
    _notify_approval_request(request, added, now, additional=False)
    return 1


def _approvals_needed(request: ActivationRequest, role_settings: RoleSettings) -> None:
    """The role's number of approvals now; one once an activation no longer needs approval
    (the request still waits for a decision; extensions and renewals always need approval)."""
    needed = (
        role_settings.approvals_required
        if role_settings.require_approval or request.kind != Kind.ACTIVATE
        else 1
    )
    if needed != request.approvals_required:
        request.approvals_required = needed
        request.save(update_fields=["approvals_required"])


def _standing_refusal(request: ActivationRequest, approver: User, live: dict[int, User]) -> str | None:
    """Why the approver, frozen on the request, may no longer decide it (None: they may)."""
    if approver.pk in live:
        return None
    return (
        f"You are no longer an approver of {request.role}: its approvers changed after this request "
        "was made, and the current approvers have been asked to decide it."
    )


def _refused(request: ActivationRequest, approver: User, decision: str, message: str) -> PermissionDenied:
    audit_refusal(
        action=f"{_prefix(request)}.decision_refused",
        actor=approver,
        target=request,
        role=request.role,
        scope=request.scope,
        details={"why": "no longer an approver", "decision": decision, "requester": request.requester.label},
    )
    return PermissionDenied(message)


def _check_live_requirements(request: ActivationRequest, role_settings: RoleSettings) -> None:
    """An activation asked without what the role now requires cannot be approved."""
    if request.kind != Kind.ACTIVATE:
        return
    missing = [
        what
        for what, required, given in (
            ("an MFA check", role_settings.require_mfa, request.mfa_verified_at),
            (
                "a passkey",
                role_settings.activation_needs_passkey,
                request.mfa_factor in PHISHING_RESISTANT_FACTORS,
            ),
            ("a justification", role_settings.require_justification, request.justification),
            ("a ticket number", role_settings.require_ticket, request.ticket_number),
        )
        if required and not given
    ]
    if missing:
        raise ActivationError(
            f"{request.role} now requires {' and '.join(missing)} to activate, and this request was made "
            "without it: it cannot be approved. Deny it; the requester must ask again."
        )


def _cap_duration(
    request: ActivationRequest, role_settings: RoleSettings, now: datetime
) -> dict[str, object] | None:
    """Cut the duration to what the role's maximum allows now; what was cut (None: nothing)."""
    maximum = _longest_allowed(request, role_settings, now)
    if request.duration <= maximum:
        return None
    if maximum < settings.PIM_MIN_ASSIGNMENT_DURATION:
        raise ActivationError(
            f"Eligible assignments of {request.role} now last at most "
            f"{_length(role_settings.eligible_max_duration)}: this eligibility cannot be extended. "
            "Deny the request."
        )
    request.requested_duration = request.requested_duration or request.duration
    request.duration = maximum
    request.save(update_fields=["duration", "requested_duration"])
    return {
        "requested_seconds": _seconds(request.requested_duration),
        "granted_seconds": _seconds(maximum),
        "note": (
            f"Capped to {_length(maximum)} by the role's maximum now; "
            f"{_length(request.requested_duration)} were asked for."
        ),
    }


def _longest_allowed(request: ActivationRequest, role_settings: RoleSettings, now: datetime) -> timedelta:
    if request.kind == Kind.ACTIVATE:
        return role_settings.activation_max_duration
    on_active = request.active_target_id is not None
    maximum = role_settings.active_max_duration if on_active else role_settings.eligible_max_duration
    if request.kind == Kind.RENEW:
        return maximum
    # An extension is added to the current end, and the extended assignment may last at most
    # the maximum from now (roles.services' rule for extending).
    target_pk = cast(uuid.UUID, request.active_target_id if on_active else request.eligible_id)
    model = ActiveAssignment if on_active else EligibleAssignment
    ends_at = model.objects.values_list("ends_at", flat=True).get(pk=target_pk)
    return maximum - (max(ends_at or now, now) - now)


def _seconds(duration: timedelta) -> int:
    return int(duration.total_seconds())


def _length(duration: timedelta) -> str:
    if duration >= timedelta(days=2) and duration % timedelta(days=1) == timedelta(0):
        return f"{duration.days} days"
    return _hours(duration)


# --- Approving ---------------------------------------------------------------------------------


def _approve(
    request: ActivationRequest,
    approver: User,
    reason: str,
    step_up: tuple[datetime | None, str | None],
    now: datetime,
    capped: dict[str, object] | None,
) -> None:
    mfa_verified_at, mfa_factor = step_up
    Approval.objects.create(
        request=request,
        approver=approver,
        decision=Approval.Decision.APPROVE,
        reason=reason,
        mfa_verified_at=cast(datetime, mfa_verified_at),  # _lock_for_decision refuses None
        mfa_factor=mfa_factor or "",
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
            "mfa_factor": mfa_factor or "",
            **({"duration_capped": capped} if capped else {}),
        },
    )
    if granted:
        _notify_decided(request, now)


def _apply_approved(request: ActivationRequest, now: datetime) -> None:
    """Carry out an approved request, with the eligibility re-checked as it is now."""
    if request.active_target_id is not None:
        _apply_approved_active(request, now)
        return
    eligible = (
        EligibleAssignment.objects.select_for_update(of=("self",))
        .select_related("role")
        .get(pk=cast(uuid.UUID, request.eligible_id))  # request_one_target: an eligibility here
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
            actor=None,
            assignment=eligible,
            ends_at=max(cast(datetime, eligible.ends_at), now) + request.duration,
            now=now,
        )
    else:
        eligible_renew(actor=None, assignment=eligible, ends_at=now + request.duration, now=now)
    _transition(request, Status.GRANTED, now)


def _apply_approved_active(request: ActivationRequest, now: datetime) -> None:
    """Extend or renew the requester's direct active assignment, as it is now."""
    assignment = (
        ActiveAssignment.objects.select_for_update(of=("self",))
        .select_related("role")
        .get(pk=cast(uuid.UUID, request.active_target_id))
    )
    if request.kind == Kind.EXTEND:
        if not assignment.is_current(now) or assignment.ended_at is not None:
            raise ActivationError("The active assignment ended meanwhile; ask for a renewal instead.")
        active_extend(
            actor=None,
            assignment=assignment,
            ends_at=max(cast(datetime, assignment.ends_at), now) + request.duration,
            justification=request.justification,
            now=now,
        )
    else:
        active_renew(
            actor=None,
            assignment=assignment,
            ends_at=now + request.duration,
            justification=request.justification,
            now=now,
        )
    _transition(request, Status.GRANTED, now)
