"""Eligible assignments: who may activate a role, where and until when."""

from collections.abc import Sequence
from datetime import datetime

from django.db import transaction
from django.utils import timezone

from accounts.models import User
from audit.services import audit_record_many
from common.db import retry_on_deadlock
from common.text import clean_text

from ..directory_services import eligible_write_back, eligibles_write_back_many
from ..models import ActiveAssignment, DirectoryOperation, EligibleAssignment, PendingChange, Role
from ..two_person import approval_details, self_extension_intercept, self_grant_intercept
from .active import active_assignments_end, lock_dependents
from .assignments import (
    Principal,
    _assign,
    _eligible_end,
    _ensure_lockout_safe,
    _entry,
    _lock_open,
    _renew,
    _require_manage_eligible,
    _update,
)


@retry_on_deadlock
def eligible_assign(
    *,
    actor: User | None,
    role: Role,
    principal: Principal,
    scope: str = "/",
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    justification: str = "",
    ticket_number: str = "",
    ticket_system: str = "",
    now: datetime | None = None,
    approved_change: PendingChange | None = None,
    notify: bool = True,
) -> EligibleAssignment | PendingChange:
    """Make a user or group eligible to activate the role at the scope. An eligibility for
    oneself (or a group one is in) waits for a second PIM Administrator (roles.two_person).
    The ticket is optional; it is kept, audited and sent to Entra with the eligibility.
    The role's notification matrix says who is emailed; notify=False for an import of an
    eligibility Entra already announced."""
    _require_manage_eligible(actor, role, attempted="eligible_assign")
    now = now or timezone.now()
    if not approved_change and (
        pending := self_grant_intercept(
            kind="eligible",
            actor=actor,
            role=role,
            principal=principal,
            scope=scope,
            starts_at=starts_at,
            ends_at=ends_at,
            justification=justification,
            ticket_number=ticket_number,
            ticket_system=ticket_system,
            now=now,
        )
    ):
        return pending  # the two-person rule: applied when a second PIM Administrator approves
    return _assign(
        EligibleAssignment,
        actor=actor,
        role=role,
        principal=principal,
        scope=scope,
        starts_at=starts_at,
        ends_at=ends_at,
        justification=justification,
        ticket=(ticket_number, ticket_system),
        now=now,
        extra={},
        details=approval_details(approved_change),
        notify=notify,
    )


@retry_on_deadlock
def eligible_update(
    *,
    actor: User | None,
    assignment: EligibleAssignment,
    ends_at: datetime | None,
    justification: str = "",
    now: datetime | None = None,
    approved_change: PendingChange | None = None,
) -> EligibleAssignment | PendingChange:
    """Change the end of an eligibility that has not ended (None: make it permanent). Making
    one's own last longer waits for a second PIM Administrator (roles.two_person)."""
    _require_manage_eligible(actor, assignment.role, attempted="eligible_update")
    if not approved_change and (
        pending := self_extension_intercept(
            actor=actor, assignment=assignment, ends_at=ends_at, justification=justification, now=now
        )
    ):
        return pending  # the two-person rule: applied when a second PIM Administrator approves
    return _update(
        assignment,
        actor=actor,
        ends_at=ends_at,
        justification=justification,
        now=now,
        verb="updated",
        details=approval_details(approved_change),
    )


@retry_on_deadlock
def eligible_extend(
    *,
    actor: User | None,
    assignment: EligibleAssignment,
    ends_at: datetime,
    justification: str = "",
    now: datetime | None = None,
) -> EligibleAssignment:
    """Move the end of a time-bound eligibility later."""
    _require_manage_eligible(actor, assignment.role, attempted="eligible_extend")
    return _update(
        assignment, actor=actor, ends_at=ends_at, justification=justification, now=now, verb="extended"
    )


@retry_on_deadlock
def eligible_renew(
    *,
    actor: User | None,
    assignment: EligibleAssignment,
    ends_at: datetime | None,
    justification: str = "",
    now: datetime | None = None,
) -> EligibleAssignment:
    """Grant an ended eligibility again, from now (a new assignment; the old one stays as history)."""
    _require_manage_eligible(actor, assignment.role, attempted="eligible_renew")
    return _renew(assignment, actor=actor, ends_at=ends_at, justification=justification, now=now)


@retry_on_deadlock
def eligible_remove(
    *,
    actor: User | None,
    assignment: EligibleAssignment,
    reason: str = "",
    end_reason: str = EligibleAssignment.EndReason.REMOVED,
    now: datetime | None = None,
) -> EligibleAssignment:
    """End an eligibility now, and any activation of it that is still live."""
    _require_manage_eligible(actor, assignment.role, attempted="eligible_remove")
    now = now or timezone.now()
    reason = clean_text(reason, field="reason")
    with transaction.atomic():
        assignment = _lock_open(EligibleAssignment, assignment.pk, now)
        _ensure_lockout_safe(assignment.role, removing=assignment, now=now)
        # Every activation of it that has not ended, including one scheduled to start later
        # (current(now) would leave that one to start from a removed eligibility): locked with
        # the requests behind them before anything is written (the lock order).
        live = list(
            ActiveAssignment.objects.select_for_update()
            .filter(eligible=assignment, ended_at__isnull=True)
            .exclude(ends_at__lte=now)
            .order_by("pk")
        )
        lock_dependents(live)
        _eligible_end(assignment, actor=actor, reason=end_reason, now=now)
        eligible_write_back(
            eligible=assignment, operation=DirectoryOperation.Operation.ELIGIBLE_REMOVE, now=now
        )
        audit_record_many(
            entries=[
                _entry(
                    "eligible_assignment.removed",
                    actor,
                    assignment,
                    {"reason": reason, "end_reason": end_reason},
                )
            ],
            at=now,
        )
        active_assignments_end(
            actor=actor,
            assignments=live,
            reason=ActiveAssignment.EndReason.REMOVED,
            now=now,
            audit_action="active_assignment.ended",
            details={"end_reason": "removed", "because": "eligibility removed"},
        )
    return assignment


def eligible_assignments_expire(*, assignments: Sequence[EligibleAssignment], now: datetime) -> None:
    """Record that eligibilities reached their ends_at (the expiry job, set-based): the end
    reason on rows not marked yet, one audit event each."""
    EligibleAssignment.objects.filter(pk__in=[a.pk for a in assignments], end_reason="").update(
        end_reason=EligibleAssignment.EndReason.EXPIRED
    )
    # Entra ends them at the same time by itself; the remove makes sure (idempotent).
    eligibles_write_back_many(
        eligibles=assignments, operation=DirectoryOperation.Operation.ELIGIBLE_REMOVE, now=now
    )
    audit_record_many(
        entries=[
            _entry(
                "eligible_assignment.expired",
                None,
                assignment,
                {"principal": assignment.principal_label, "ends_at": assignment.ends_at},
            )
            for assignment in assignments
        ],
        at=now,
    )
