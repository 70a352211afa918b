"""Deciding: who may decide, approving (the change is applied by the service that would have
applied it at once), rejecting, canceling and expiring a pending change.

Lock order: the row the change applies to (the role's settings, or the role), then the pending
change."""

from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import DirectoryGroup, User
from audit.refusals import audit_refusal
from audit.services import AuditEntry, audit_record, audit_record_many
from common.step_up import verification_is_fresh
from common.text import clean_text
from notifications.services import email_queue

from ..models import ActiveAssignment, EligibleAssignment, PendingChange, Role, RoleSettings
from ..selectors import PIM_ADMINISTRATOR, portal_role, user_holds_role
from .display import _label
from .payload import _from_json, _objects, _principal
from .proposals import _link, change_beneficiary_ids

Kind = PendingChange.Kind
Status = PendingChange.Status

SELF_APPROVAL_MESSAGE = "You proposed this change: a second PIM Administrator must approve it."
BENEFICIARY_MESSAGE = "This change would give you access: another PIM Administrator must approve it."
NOT_ADMIN_MESSAGE = (
    "Only a PIM Administrator with the role active can decide pending changes: activate it first."
)
EXPIRE_BATCH = 500


def pending_change_decider_check(*, user: User, change: PendingChange, deciding: str = "approve") -> None:
    """Raise PermissionDenied if the person may not decide the change. A proposer (or someone
    the change gives access to) trying to approve leaves a pending_change.self_approval_refused
    event, and anyone else who may not decide a pending_change.decision_refused one (written in
    their own transaction, rate-limited: audit.refusals)."""
    if deciding == "approve" and (user.pk == change.proposer_id or user.pk in change_beneficiary_ids(change)):
        own = user.pk == change.proposer_id
        audit_refusal(
            action="pending_change.self_approval_refused",
            actor=user,
            target=change,
            role=change.role,
            details={
                "kind": change.kind,
                "proposed_by": change.proposer.label,
                "why": "proposer" if own else "the change gives them access",
            },
        )
        raise PermissionDenied(SELF_APPROVAL_MESSAGE if own else BENEFICIARY_MESSAGE)
    if deciding == "reject" and user.pk == change.proposer_id:
        raise PermissionDenied("You proposed this change: cancel it instead.")
    if not User.objects.filter(pk=user.pk, is_active=True).exists():
        raise _decision_refused(user, change, deciding, "A deactivated account cannot decide changes.")
    if not user_holds_role(user=user, role=portal_role(PIM_ADMINISTRATOR)):
        raise _decision_refused(user, change, deciding, NOT_ADMIN_MESSAGE)


def _decision_refused(user: User, change: PendingChange, deciding: str, message: str) -> PermissionDenied:
    audit_refusal(
        action="pending_change.decision_refused",
        actor=user,
        target=change,
        role=change.role,
        details={"kind": change.kind, "decision": deciding, "why": message},
    )
    return PermissionDenied(message)


def pending_change_approve(
    *,
    approver: User,
    change: PendingChange,
    reason: str = "",
    mfa_verified_at: datetime | None,
    now: datetime | None = None,
) -> PendingChange:
    """A second PIM Administrator approves: the change is applied now, by the service that
    would have applied it at once, with the live state and the approver's rights re-checked."""
    now = now or timezone.now()
    reason = clean_text(reason, field="reason")
    pending_change_decider_check(user=approver, change=change, deciding="approve")
    _require_fresh_mfa(mfa_verified_at, now)
    with transaction.atomic():
        change = _lock_for_decision(change.pk, now)
        change.decided_by, change.decided_at, change.reason = approver, now, reason
        applied = _apply(change, actor=approver, mfa_verified_at=mfa_verified_at, now=now)
        _transition(change, Status.APPROVED)
        audit_record(
            action="pending_change.approved",
            actor=approver,
            target=change,
            role=change.role,
            scope=change.payload.get("scope", ""),
            details={
                "kind": change.kind,
                "proposed_by": change.proposer.label,
                "approved_by": approver.label,
                "reason": reason,
                "applied": _label(applied),
            },
            at=now,
        )
        _notify_decided(change, now)
    return change


def pending_change_reject(
    *,
    approver: User,
    change: PendingChange,
    reason: str,
    mfa_verified_at: datetime | None,
    now: datetime | None = None,
) -> PendingChange:
    """A second PIM Administrator rejects the change (with a reason); nothing is applied."""
    now = now or timezone.now()
    reason = clean_text(reason, field="reason", required=True)
    pending_change_decider_check(user=approver, change=change, deciding="reject")
    _require_fresh_mfa(mfa_verified_at, now)
    with transaction.atomic():
        change = _lock_for_decision(change.pk, now)
        change.decided_by, change.decided_at, change.reason = approver, now, reason
        _transition(change, Status.REJECTED)
        audit_record(
            action="pending_change.rejected",
            actor=approver,
            target=change,
            role=change.role,
            details={
                "kind": change.kind,
                "proposed_by": change.proposer.label,
                "rejected_by": approver.label,
                "reason": reason,
            },
            at=now,
        )
        _notify_decided(change, now)
    return change


def pending_change_cancel(
    *, actor: User, change: PendingChange, now: datetime | None = None
) -> PendingChange:
    """The proposer withdraws their change."""
    now = now or timezone.now()
    if actor.pk != change.proposer_id:
        raise PermissionDenied("Only the person who proposed a change can cancel it.")
    with transaction.atomic():
        change = _lock_for_decision(change.pk, now)
        change.decided_by, change.decided_at = actor, now
        _transition(change, Status.CANCELED)
        audit_record(
            action="pending_change.canceled",
            actor=actor,
            target=change,
            role=change.role,
            details={"kind": change.kind, "proposed_by": change.proposer.label},
            at=now,
        )
    return change


def pending_change_expire_due(*, now: datetime | None = None, batch: int = EXPIRE_BATCH) -> int:
    """Expire pending changes past their deadline (the periodic job "pending-changes-expire-due").
    Rows are claimed with a conditional update, so a doubled or late run expires each once."""
    now = now or timezone.now()
    done = 0
    while True:
        with transaction.atomic():
            ids = list(
                PendingChange.objects.select_for_update(skip_locked=True)
                .filter(status=Status.PENDING, decide_by__lte=now)
                .order_by("decide_by")
                .values_list("pk", flat=True)[:batch]
            )
            if not ids:
                return done
            PendingChange.objects.filter(pk__in=ids, status=Status.PENDING).update(
                status=Status.EXPIRED, decided_at=now
            )
            expired = list(
                PendingChange.objects.filter(
                    pk__in=ids, status=Status.EXPIRED, decided_at=now
                ).select_related("role", "proposer")
            )
            audit_record_many(
                entries=[
                    AuditEntry(
                        action="pending_change.expired",
                        target=change,
                        role=change.role,
                        details={
                            "kind": change.kind,
                            "proposed_by": change.proposer.label,
                            "decide_by": change.decide_by,
                        },
                    )
                    for change in expired
                ],
                at=now,
            )
            for change in expired:
                _notify_decided(change, now)
            done += len(expired)
        if len(ids) < batch:
            return done


def _lock_for_decision(pk, now: datetime) -> PendingChange:
    """Lock the row the change applies to, then the change; re-check that it is still open."""
    kind, role_id = PendingChange.objects.values_list("kind", "role_id").get(pk=pk)
    if kind == Kind.ROLE:
        Role.objects.select_for_update().get(pk=role_id)
    else:
        RoleSettings.objects.select_for_update().get(role_id=role_id)
    change = (
        PendingChange.objects.select_for_update(of=("self",)).select_related("role", "proposer").get(pk=pk)
    )
    if change.status != Status.PENDING:
        raise ValidationError(already_decided_message(change))
    if now >= change.decide_by:
        raise ValidationError("This change expired before it was decided; it must be proposed again.")
    return change


def already_decided_message(change: PendingChange) -> str:
    who = f" by {change.decided_by}" if change.decided_by_id else ""
    when = f" at {change.decided_at:%Y-%m-%d %H:%M} UTC" if change.decided_at else ""
    return f"This change was already {change.get_status_display().lower()}{who}{when}."


def _transition(change: PendingChange, target: str) -> None:
    if not change.can_become(target):
        raise ValidationError(already_decided_message(change))
    change.status = target
    change.save(update_fields=["status", "decided_by", "decided_at", "reason"])


def _apply(change: PendingChange, *, actor: User, mfa_verified_at, now: datetime):
    """Carry out the change through the service that would have carried it out at once."""
    from .. import services  # services imports this package (for the intercepts)

    payload = change.payload
    if change.kind == Kind.ROLE_SETTINGS:
        return services.role_settings_update(
            actor=actor,
            role=change.role,
            changes={field: _from_json(field, value) for field, value in payload["changes"].items()},
            approvers=_objects(User, payload.get("approvers")),
            approver_groups=_objects(DirectoryGroup, payload.get("approver_groups")),
            approved_change=change,
        )
    if change.kind == Kind.ROLE:
        return services.role_update(
            actor=actor, role=change.role, changes=dict(payload["changes"]), approved_change=change
        )
    if "assignment" in payload:  # a longer end for an existing assignment
        model = EligibleAssignment if change.kind == Kind.SELF_ELIGIBLE else ActiveAssignment
        assignment = model.objects.filter(pk=payload["assignment"]).first()
        if assignment is None:
            raise ValidationError("The assignment no longer exists.")
        update: Callable[..., Any] = (
            services.eligible_update if model is EligibleAssignment else services.active_update
        )
        return update(
            actor=actor,
            assignment=assignment,
            ends_at=_from_json("ends_at", payload["ends_at"]),
            justification=payload["justification"],
            now=now,
            approved_change=change,
        )
    principal = _principal(payload["principal"])
    if principal is None:
        raise ValidationError("The user or group of this assignment no longer exists.")
    starts_at = _from_json("starts_at", payload["starts_at"])
    arguments = {
        "actor": actor,
        "role": change.role,
        "principal": principal,
        "scope": payload["scope"],
        # Proposed to start "now": it starts when approved (an assignment never starts in the past).
        "starts_at": max(starts_at, now) if starts_at else None,
        "ends_at": _from_json("ends_at", payload["ends_at"]),
        "justification": payload["justification"],
        "ticket_number": payload.get("ticket_number", ""),
        "ticket_system": payload.get("ticket_system", ""),
        "now": now,
        "approved_change": change,
    }
    if change.kind == Kind.SELF_ELIGIBLE:
        return services.eligible_assign(**arguments)
    return services.active_assign(**arguments, mfa_verified_at=mfa_verified_at)


def approval_details(change: PendingChange | None) -> dict:
    """What the applying service adds to its audit event's details: both people."""
    if change is None:
        return {}
    return {
        "two_person": {
            "pending_change": str(change.pk),
            "proposed_by": change.proposer.label,
            "approved_by": change.decided_by.label if change.decided_by is not None else "",
        }
    }


def _notify_decided(change: PendingChange, now: datetime) -> None:
    email_queue(
        recipients=[change.proposer],
        template="pending-change-decided",
        now=now,
        context={"change": change, "link": _link(change)},
    )


def _require_fresh_mfa(mfa_verified_at: datetime | None, now: datetime) -> None:
    if not verification_is_fresh(mfa_verified_at, now):
        raise PermissionDenied("Deciding a pending change needs a fresh MFA verification.")
