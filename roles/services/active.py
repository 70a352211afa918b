"""Active assignments: direct ones made by administrators, those behind activations, and
the one place an active assignment's end is written (active_assignments_end)."""

import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from accounts.models import DirectoryGroup, User
from audit.services import audit_record_many
from common.db import many_ids, retry_on_deadlock
from common.text import clean_text

from ..directory_services import (
    directory_operation_enqueue,
    directory_operations_enqueue_ids,
    directory_operations_enqueue_many,
)
from ..models import (
    ActiveAssignment,
    DirectoryOperation,
    EligibleAssignment,
    PendingChange,
    Role,
    RoleSettings,
)
from ..signals import active_assignment_ended, active_assignments_ending
from ..two_person import approval_details, self_extension_intercept, self_grant_intercept
from .assignments import (
    Principal,
    _assign,
    _ensure_lockout_safe,
    _entry,
    _lock_open,
    _renew,
    _require_fresh_mfa,
    _require_manage_active,
    _update,
)


@retry_on_deadlock
def active_assign(
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
    mfa_verified_at: datetime | None = None,
    now: datetime | None = None,
    approved_change: PendingChange | None = None,
) -> ActiveAssignment | PendingChange:
    """Directly assign the role (no activation needed): the admin's own policy checks apply.
    An assignment to oneself (or a group one is in) waits for a second PIM Administrator.
    The ticket is optional (the role's require_ticket is about activation, as Entra's
    "Require ticket information on activation"); it is kept, audited and sent to Entra."""
    _require_manage_active(actor, role, attempted="active_assign")
    now = now or timezone.now()
    if not approved_change and (
        pending := self_grant_intercept(
            kind="active",
            actor=actor,
            role=role,
            principal=principal,
            scope=scope,
            starts_at=starts_at,
            ends_at=ends_at,
            justification=justification,
            ticket_number=ticket_number,
            ticket_system=ticket_system,
            mfa_verified_at=mfa_verified_at,
            now=now,
        )
    ):
        return pending  # the two-person rule: applied when a second PIM Administrator approves

    return _assign(
        ActiveAssignment,
        actor=actor,
        role=role,
        principal=principal,
        scope=scope,
        starts_at=starts_at,
        ends_at=ends_at,
        justification=justification,
        ticket=(ticket_number, ticket_system),
        now=now,
        policy=_active_admin_policy(actor, justification, mfa_verified_at, now),
        extra={"origin": ActiveAssignment.Origin.DIRECT},
        details=approval_details(approved_change),
    )


@retry_on_deadlock
def active_update(
    *,
    actor: User | None,
    assignment: ActiveAssignment,
    ends_at: datetime | None,
    justification: str = "",
    now: datetime | None = None,
    approved_change: PendingChange | None = None,
) -> ActiveAssignment | PendingChange:
    """Change the end of a direct active assignment. Making one's own last longer waits for a
    second PIM Administrator (roles.two_person)."""
    _require_manage_active(actor, assignment.role, attempted="active_update")
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
def active_extend(
    *,
    actor: User | None,
    assignment: ActiveAssignment,
    ends_at: datetime,
    justification: str = "",
    now: datetime | None = None,
) -> ActiveAssignment:
    _require_manage_active(actor, assignment.role, attempted="active_extend")
    return _update(
        assignment, actor=actor, ends_at=ends_at, justification=justification, now=now, verb="extended"
    )


@retry_on_deadlock
def active_renew(
    *,
    actor: User | None,
    assignment: ActiveAssignment,
    ends_at: datetime | None,
    justification: str = "",
    now: datetime | None = None,
) -> ActiveAssignment:
    _require_manage_active(actor, assignment.role, attempted="active_renew")
    return _renew(assignment, actor=actor, ends_at=ends_at, justification=justification, now=now)


@retry_on_deadlock
def active_remove(
    *,
    actor: User | None,
    assignment: ActiveAssignment,
    reason: str = "",
    end_reason: str = ActiveAssignment.EndReason.REVOKED,
    now: datetime | None = None,
) -> ActiveAssignment:
    """End an active assignment now (admin revoke)."""
    _require_manage_active(actor, assignment.role, attempted="active_remove")
    now = now or timezone.now()
    reason = clean_text(reason, field="reason")
    with transaction.atomic():
        assignment = _lock_open(ActiveAssignment, assignment.pk, now)
        _ensure_lockout_safe(assignment.role, removing=assignment, now=now)
        active_assignments_end(
            actor=actor,
            assignments=[assignment],
            reason=end_reason,
            now=now,
            audit_action="active_assignment.removed",
            details={"reason": reason, "end_reason": end_reason},
        )
    return assignment


def active_assignments_revoke_for_user(
    *, actor: User | None, user: User, reason: str, now: datetime | None = None
) -> int:
    """End every live or future active assignment the user holds directly (on deactivation).

    Refused if the user is the last one who can use a lockout-protected role."""
    now = now or timezone.now()
    with transaction.atomic():
        for role in Role.objects.filter(lockout_protected=True):
            _ensure_lockout_safe(role, removing_user=user, now=now)
        open_assignments = list(
            ActiveAssignment.objects.select_for_update(of=("self",))
            .filter(user=user, ended_at__isnull=True)
            .exclude(ends_at__lte=now)
            .select_related("role")
            .order_by("pk")
        )
        active_assignments_end(
            actor=actor,
            assignments=open_assignments,
            reason=ActiveAssignment.EndReason.REVOKED,
            now=now,
            audit_action="active_assignment.revoked",
            details={"reason": clean_text(reason, field="reason")},
        )
    return len(open_assignments)


def assignments_end_for_group_leaver(
    *, actor: User | None, group: DirectoryGroup, user: User, now: datetime | None = None
) -> int:
    """What leaving a group does to a person's roles (accounts.services.group_member_remove
    calls this in its transaction, with the group locked, before the membership goes).

    The user's live activations of the group's eligibilities end (their basis is gone).
    Refused (LockoutError) if those, or the group's own assignments when the user is its last
    active member, are the last hold on a lockout-protected role."""
    now = now or timezone.now()
    with transaction.atomic():
        derived = list(
            ActiveAssignment.objects.select_for_update()
            .filter(user=user, ended_at__isnull=True)
            .filter(eligible__in=EligibleAssignment.objects.filter(group=group).values("pk"))
            .exclude(ends_at__lte=now)
            .order_by("pk")
        )
        lock_dependents(derived)  # every lock before the first audit event (the lock order)
        for assignment in derived:
            _ensure_lockout_safe(assignment.role, removing=assignment, now=now)
            # One by one: the next lockout check no longer counts the ones ended before it.
            active_assignments_end(
                actor=actor,
                assignments=[assignment],
                reason=ActiveAssignment.EndReason.REMOVED,
                now=now,
                audit_action="active_assignment.ended",
                details={"end_reason": "removed", "because": f"{user.label} left {group.label}"},
            )
        # Checked after those ended: role_holders no longer counts them.
        if user.is_active and not group.members.filter(is_active=True).exclude(pk=user.pk).exists():
            for role in Role.objects.filter(lockout_protected=True):
                _ensure_lockout_safe(role, removing_group=group, now=now)
    return len(derived)


def _active_admin_policy(
    actor: User | None, justification: str, mfa_verified_at: datetime | None, now: datetime
) -> Callable[[RoleSettings], str]:
    """The role's rules for whoever makes a direct active assignment (MFA, justification)."""

    def check(role_settings: RoleSettings) -> str:
        if role_settings.active_require_mfa and actor is not None:
            _require_fresh_mfa(mfa_verified_at, now)
        return clean_text(
            justification, field="justification", required=role_settings.active_require_justification
        )

    return check


def active_assignment_create_for_activation(
    *,
    eligible: EligibleAssignment,
    user: User,
    scope: str,
    starts_at: datetime,
    ends_at: datetime,
    justification: str,
    now: datetime,
    ticket_number: str = "",
    ticket_system: str = "",
) -> ActiveAssignment:
    """The active assignment behind a granted activation (activations audits the grant;
    the policy was checked by the activation services under their locks). It keeps the
    request's ticket, which the directory's requests carry (ticketInfo)."""
    assignment = ActiveAssignment.objects.create(
        user=user,
        role_id=eligible.role_id,
        scope=scope,
        starts_at=starts_at,
        ends_at=ends_at,
        justification=justification,
        ticket_number=ticket_number,
        ticket_system=ticket_system,
        origin=ActiveAssignment.Origin.ACTIVATION,
        eligible=eligible,
        created_by=user,
    )
    directory_operation_enqueue(assignment=assignment, operation=DirectoryOperation.Operation.GRANT, now=now)
    return assignment


def active_assignment_end(
    *, actor: User | None, assignment: ActiveAssignment, reason: str, now: datetime
) -> None:
    """End a locked, live active assignment now: for activations' deactivate / revoke (the
    request's own audit event records it)."""
    active_assignments_end(actor=actor, assignments=[assignment], reason=reason, now=now)


def active_assignments_expired_record(*, assignment_ids: Sequence[uuid.UUID], now: datetime) -> None:
    """Record, set-based, that locked active assignments reached their ends_at: the end
    reason Expired on those not marked yet (ended_at stays empty: ends_at is when they
    ended) and a directory revoke each, queued after commit as one broker message. The
    expiry jobs' part of active_assignments_end, for callers that hold ids, not objects (the
    caller writes the audit events)."""
    if not assignment_ids:
        return
    ActiveAssignment.objects.filter(pk__in=many_ids(assignment_ids), end_reason="").update(
        end_reason=ActiveAssignment.EndReason.EXPIRED
    )
    directory_operations_enqueue_ids(
        assignment_ids=list(assignment_ids), operation=DirectoryOperation.Operation.REVOKE, now=now
    )


def active_assignments_end(
    *,
    actor: User | None,
    assignments: Sequence[ActiveAssignment],
    reason: str,
    now: datetime,
    audit_action: str | None = None,
    details: dict[str, Any] | None = None,
) -> None:
    """The one place an active assignment's end is written, with its directory revoke and,
    given ``audit_action``, one audit event each (without it the caller's own event records
    the end: an activation's request). Runs in the caller's transaction.

    ``reason`` Expired records assignments that reached their ends_at (the expiry jobs,
    set-based): the end reason only, on rows not marked yet; ended_at stays empty, ends_at
    is when they ended. Any other reason ends locked, live assignments now (ended_at,
    ended_by, end_reason) and tells activations (active_assignment_ended), which closes the
    request behind one in the same transaction."""
    if not assignments:
        return
    expired = reason == ActiveAssignment.EndReason.EXPIRED
    if not expired:
        lock_dependents(assignments)
    if expired:
        active_assignments_expired_record(assignment_ids=[a.pk for a in assignments], now=now)
    for assignment in assignments:
        if expired:
            assignment.end_reason = assignment.end_reason or reason
            continue
        assignment.ended_at = now
        assignment.ended_by = actor
        assignment.end_reason = reason
        assignment.save(update_fields=["ended_at", "ended_by", "end_reason"])
    if not expired:
        directory_operations_enqueue_many(
            assignments=assignments, operation=DirectoryOperation.Operation.REVOKE, now=now
        )
    if not expired:
        for assignment in assignments:
            active_assignment_ended.send(
                sender=ActiveAssignment, assignment=assignment, actor=actor, reason=reason, now=now
            )
    if audit_action:
        audit_record_many(
            entries=[
                _entry(
                    audit_action,
                    actor,
                    assignment,
                    {
                        **(
                            {"principal": assignment.principal_label, "ends_at": assignment.ends_at}
                            if expired
                            else {}
                        ),
                        **(details or {}),
                    },
                )
                for assignment in assignments
            ],
            at=now,
        )


def lock_dependents(assignments: Sequence[ActiveAssignment]) -> None:
    """Lock what hangs on these locked, live assignments (the requests behind activations)
    before anything is written: the lock order, every lock before the first audit event.
    Idempotent, so a service locks them as early as it likes and active_assignments_end
    makes sure."""
    if assignments:
        active_assignments_ending.send(sender=ActiveAssignment, assignments=list(assignments))
