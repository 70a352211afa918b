"""What eligible and active assignments share: creating, updating and renewing them under
the role's policy, anti-lockout, and who may act."""

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.conf import settings as django_settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import DirectoryGroup, User
from audit.refusals import audit_permission_denied
from audit.services import AuditEntry, audit_record
from common.step_up import verification_is_fresh
from common.text import clean_text

from ..directory_services import directory_operation_enqueue, eligible_write_back
from ..models import ActiveAssignment, DirectoryOperation, EligibleAssignment, Role, RoleSettings
from ..notification_matrix import assignment_created_notify
from ..scopes import scope_validate
from ..selectors import role_holders, user_can_manage_active, user_can_manage_eligible

# Backdating is refused: an assignment cannot claim to have started before it was made.
_BACKDATE_TOLERANCE = timedelta(minutes=1)


class LockoutError(ValidationError):
    """The change would leave a lockout-protected role with nobody who can use it."""


Principal = User | DirectoryGroup
_AssignmentT = TypeVar("_AssignmentT", EligibleAssignment, ActiveAssignment)


def _assign(
    model: type[_AssignmentT],
    *,
    actor: User | None,
    role: Role,
    principal: Principal,
    scope: str,
    starts_at: datetime | None,
    ends_at: datetime | None,
    justification: str,
    now: datetime,
    ticket: tuple[str, str] = ("", ""),
    extra: dict[str, Any] | None = None,
    policy: Callable[[RoleSettings], str] | None = None,
    details: dict[str, Any] | None = None,
    write_back_as: str = "",
    notify: bool = True,
) -> _AssignmentT:
    """Create an assignment after locking the role's settings and checking them (policy() may
    check more and returns the cleaned justification). An eligibility of a directory role is
    written back to the directory (as write_back_as, by default an assign). The role's
    notification matrix says who is emailed (notify=False: an import of what another system
    already announced)."""
    extra = extra or {}
    kind = "eligible" if model is EligibleAssignment else "active"
    scope = scope_validate(scope, kind=role.kind)
    justification = clean_text(justification, field="justification")
    ticket_number, ticket_system = ticket_clean(*ticket)
    starts_at = starts_at or now
    with transaction.atomic():
        role_settings = (
            RoleSettings.objects.select_for_update(of=("self",)).select_related("role").get(role=role)
        )
        if policy is not None:
            justification = policy(role_settings)
        _ensure_principal_usable(principal)
        _validate_window(
            role_settings,
            kind,
            starts_at=starts_at,
            ends_at=ends_at,
            now=now,
            measure_from=starts_at,
            new=True,
        )
        principal_field = "user" if isinstance(principal, User) else "group"
        overlapping = model.objects.filter(
            **{principal_field: principal}, role=role, scope=scope, ended_at__isnull=True
        ).exclude(ends_at__lte=starts_at)
        if ends_at is not None:
            overlapping = overlapping.filter(starts_at__lt=ends_at)
        if overlapping.exists():
            raise ValidationError(
                f"{principal} already has an {kind} assignment of {role} at {scope} for that time; "
                "extend or update it instead."
            )
        assignment = model.objects.create(
            **{principal_field: principal},
            role=role,
            scope=scope,
            starts_at=starts_at,
            ends_at=ends_at,
            justification=justification,
            ticket_number=ticket_number,
            ticket_system=ticket_system,
            created_by=actor,
            **extra,
        )
        if isinstance(assignment, ActiveAssignment):
            directory_operation_enqueue(
                assignment=assignment, operation=DirectoryOperation.Operation.GRANT, now=now
            )
        else:
            eligible_write_back(
                eligible=assignment,
                operation=write_back_as or DirectoryOperation.Operation.ELIGIBLE_ASSIGN,
                now=now,
            )
        audit_record(
            action=f"{kind}_assignment.created",
            actor=actor,
            target=assignment,
            role=role,
            scope=scope,
            details={
                "principal": principal.label,
                "starts_at": starts_at,
                "ends_at": ends_at,
                "justification": justification,
                **({"ticket_number": ticket_number, "ticket_system": ticket_system} if ticket_number else {}),
                **{key: str(value) for key, value in extra.items()},
                **(details or {}),
            },
            at=now,
        )
        if notify:
            assignment_created_notify(
                role_settings=role_settings, assignment=assignment, kind=kind, actor=actor, now=now
            )
    return assignment


def ticket_clean(ticket_number: str, ticket_system: str) -> tuple[str, str]:
    """An administrator's optional ticket (free text, as Entra's ticketInfo): a system alone
    names no ticket, so it needs a number."""
    number = clean_text(ticket_number, field="ticket_number", max_length=100)
    system = clean_text(ticket_system, field="ticket_system", max_length=100)
    if system and not number:
        raise ValidationError(
            {"ticket_number": "Enter the ticket number too, or leave the ticket system empty."}
        )
    return number, system


def _update(
    assignment: _AssignmentT,
    *,
    actor: User | None,
    ends_at: datetime | None,
    justification: str,
    now: datetime | None,
    verb: str,
    details: dict[str, Any] | None = None,
) -> _AssignmentT:
    model = type(assignment)
    kind = "eligible" if model is EligibleAssignment else "active"
    now = now or timezone.now()
    justification = clean_text(justification, field="justification")
    with transaction.atomic():
        role_settings = RoleSettings.objects.select_for_update().get(role_id=assignment.role_id)
        assignment = _lock_open(model, assignment.pk, now)
        if verb == "extended":
            if assignment.ends_at is None:
                raise ValidationError("A permanent assignment cannot be extended.")
            if ends_at is None or ends_at <= assignment.ends_at:
                raise ValidationError("An extension must end later than the assignment ends now.")
        measure_from = now if verb == "extended" else assignment.starts_at
        _validate_window(
            role_settings,
            kind,
            starts_at=assignment.starts_at,
            ends_at=ends_at,
            now=now,
            measure_from=measure_from,
        )
        if ends_at is not None and (assignment.ends_at is None or ends_at < assignment.ends_at):
            _ensure_lockout_safe(assignment.role, removing=assignment, now=now, new_end=ends_at)
        before = {"ends_at": assignment.ends_at}
        assignment.ends_at = ends_at
        assignment.save(update_fields=["ends_at"])
        if isinstance(assignment, EligibleAssignment):
            Operation = DirectoryOperation.Operation
            operation = Operation.ELIGIBLE_EXTEND if verb == "extended" else Operation.ELIGIBLE_UPDATE
            eligible_write_back(eligible=assignment, operation=operation, now=now)
        audit_record(
            action=f"{kind}_assignment.{verb}",
            actor=actor,
            target=assignment,
            role=assignment.role,
            scope=assignment.scope,
            details={
                "before": before,
                "after": {"ends_at": ends_at},
                "justification": justification,
                **(details or {}),
            },
            at=now,
        )
    return assignment


def _renew(
    assignment: _AssignmentT,
    *,
    actor: User | None,
    ends_at: datetime | None,
    justification: str,
    now: datetime | None,
    policy: Callable[[RoleSettings], str] | None = None,
) -> _AssignmentT:
    model = type(assignment)
    now = now or timezone.now()
    if assignment.is_current(now) or assignment.starts_at > now:
        raise ValidationError("Only an assignment that has ended can be renewed; extend this one instead.")
    extra = {"origin": ActiveAssignment.Origin.DIRECT} if model is ActiveAssignment else {}
    with transaction.atomic():
        renewed = _assign(
            model,
            actor=actor,
            role=assignment.role,
            principal=assignment.principal,
            scope=assignment.scope,
            starts_at=now,
            ends_at=ends_at,
            justification=justification,
            now=now,
            extra=extra,
            policy=policy,
            write_back_as=DirectoryOperation.Operation.ELIGIBLE_RENEW,
        )
        kind = "eligible" if model is EligibleAssignment else "active"
        audit_record(
            action=f"{kind}_assignment.renewed",
            actor=actor,
            target=renewed,
            role=renewed.role,
            scope=renewed.scope,
            details={"renewed_from": str(assignment.pk), "ends_at": ends_at},
            at=now,
        )
    return renewed


def _lock_open(model: type[_AssignmentT], pk: uuid.UUID, now: datetime) -> _AssignmentT:
    """Lock the assignment and make sure it has not ended (it may not have started yet)."""
    assignment = model.objects.select_for_update(of=("self",)).select_related("role").get(pk=pk)
    if assignment.ended_at is not None and assignment.ended_at <= now:
        raise ValidationError("This assignment has already ended.")
    if assignment.ends_at is not None and assignment.ends_at <= now:
        raise ValidationError("This assignment has already expired; renew it instead.")
    return assignment


def _eligible_end(assignment: EligibleAssignment, *, actor: User | None, reason: str, now: datetime) -> None:
    assignment.ended_at = now
    assignment.ended_by = actor
    assignment.end_reason = reason
    assignment.save(update_fields=["ended_at", "ended_by", "end_reason"])


def _entry(
    action: str,
    actor: User | None,
    assignment: EligibleAssignment | ActiveAssignment,
    details: dict[str, Any],
) -> AuditEntry:
    return AuditEntry(
        action=action,
        actor=actor,
        target=assignment,
        role=assignment.role,
        scope=assignment.scope,
        details=details,
    )


def _validate_window(
    role_settings: RoleSettings,
    kind: str,
    *,
    starts_at: datetime,
    ends_at: datetime | None,
    now: datetime,
    measure_from: datetime,
    new: bool = False,
) -> None:
    """The role's policy on how long an eligible or active assignment may last."""
    allow_permanent = getattr(role_settings, f"{kind}_allow_permanent")
    max_duration = getattr(role_settings, f"{kind}_max_duration")
    if new and starts_at < now - _BACKDATE_TOLERANCE:
        raise ValidationError({"starts_at": "An assignment cannot start in the past."})
    if ends_at is None:
        if not allow_permanent:
            raise ValidationError(
                {
                    "ends_at": f"Permanent {kind} assignments of {role_settings.role} are not allowed; "
                    f"choose an end within {_human(max_duration)}."
                }
            )
        return
    if ends_at <= starts_at:
        raise ValidationError({"ends_at": "The end must be after the start."})
    if ends_at - max(starts_at, now) < django_settings.PIM_MIN_ASSIGNMENT_DURATION:
        raise ValidationError({"ends_at": "An assignment must last at least 5 minutes."})
    if ends_at - measure_from > max_duration:
        raise ValidationError(
            {
                "ends_at": (
                    f"{kind.capitalize()} assignments of {role_settings.role} "
                    f"last at most {_human(max_duration)}."
                )
            }
        )


def _human(duration: timedelta) -> str:
    if duration % timedelta(days=1) == timedelta(0):
        return f"{duration.days} days"
    hours = duration.total_seconds() / 3600
    return f"{hours:g} hours"


def _ensure_principal_usable(principal: Principal) -> None:
    if isinstance(principal, User) and not principal.is_active:
        raise ValidationError(f"{principal} is deactivated and cannot be assigned roles.")


def _ensure_lockout_safe(
    role: Role,
    *,
    now: datetime,
    removing: EligibleAssignment | ActiveAssignment | None = None,
    removing_user: User | None = None,
    removing_group: DirectoryGroup | None = None,
    new_end: datetime | None = None,
) -> None:
    """Anti-lockout: never leave a protected role without a holder, nor take away its last
    permanent holder, nor give the last holder an end (or an earlier one) that no other holder
    outlasts, whatever their own ends (README "Anti-lockout"; the last holder that reaches its
    end anyway is kept by lockout_holders_keep).

    What goes: one assignment (removing; at new_end if given, else now), a user with their
    sole-member groups (removing_user), or a group's assignments (removing_group: its last
    active member leaves)."""
    if not role.lockout_protected:
        return
    eligible, active = role_holders(role=role, at=now)
    if removing is not None:
        if not removing.is_current(now):
            return
        lost = [qs.filter(pk=removing.pk) for qs in (eligible, active) if qs.model is type(removing)]
        eligible = eligible.exclude(pk=removing.pk) if isinstance(removing, EligibleAssignment) else eligible
        active = active.exclude(pk=removing.pk) if isinstance(removing, ActiveAssignment) else active
    else:
        if removing_group is not None:
            gone = Q(group=removing_group)
        else:
            if removing_user is None:
                raise TypeError("Say what goes: removing, removing_user or removing_group.")
            # The user's own assignments, and those of groups where they are the only active member.
            sole_groups = [
                group.pk
                for group in DirectoryGroup.objects.filter(members=removing_user)
                if not group.members.filter(is_active=True).exclude(pk=removing_user.pk).exists()
            ]
            gone = Q(user=removing_user) | Q(group__in=sole_groups)
        lost = [eligible.filter(gone), active.filter(gone)]
        eligible, active = eligible.exclude(gone), active.exclude(gone)
    if not any(qs.exists() for qs in lost):
        return
    losing_permanent = any(qs.filter(ends_at__isnull=True).exists() for qs in lost)
    permanent_left = (
        eligible.filter(ends_at__isnull=True).exists() or active.filter(ends_at__isnull=True).exists()
    )
    if (losing_permanent and not permanent_left) or not (eligible.exists() or active.exists()):
        raise LockoutError(
            f"{role} must keep at least one permanent holder (anti-lockout): assign someone else first."
        )
    if new_end is not None and removing is not None:
        _ensure_outlasted(role, removing, new_end)


def _ensure_outlasted(
    role: Role, assignment: EligibleAssignment | ActiveAssignment, new_end: datetime
) -> None:
    """Ending (or ending earlier) one holder is allowed only if another still holds the role
    after that end: the last holder's end cannot be set or brought forward."""
    eligible, active = role_holders(role=role, at=new_end)
    model = type(assignment)
    others = [qs.exclude(pk=assignment.pk) if qs.model is model else qs for qs in (eligible, active)]
    if not any(qs.exists() for qs in others):
        raise LockoutError(
            f"{role} would have no holder after {new_end:%Y-%m-%d %H:%M} UTC (anti-lockout): the last "
            "holder's end cannot be set or brought forward. Assign someone else first."
        )


def _require_fresh_mfa(mfa_verified_at: datetime | None, now: datetime) -> None:
    if not verification_is_fresh(mfa_verified_at, now):
        raise PermissionDenied("This change needs a fresh MFA verification.")


def _require_perm(actor: User | None, perm: str, *, attempted: str) -> None:
    if actor is not None and not actor.has_perm(perm):
        raise audit_permission_denied(
            actor=actor, attempted=attempted, permission=perm, message="You may not do this."
        )


def _require_manage_eligible(actor: User | None, role: Role, *, attempted: str) -> None:
    if actor is not None and not user_can_manage_eligible(user=actor, role=role):
        raise audit_permission_denied(
            actor=actor,
            attempted=attempted,
            permission="roles.manage_eligible_assignments",
            role=role,
            message=f"You may not manage eligible assignments of {role}.",
        )


def _require_manage_active(actor: User | None, role: Role, *, attempted: str) -> None:
    if actor is not None and not user_can_manage_active(user=actor, role=role):
        raise audit_permission_denied(
            actor=actor,
            attempted=attempted,
            permission="roles.manage_active_assignments",
            role=role,
            message=f"You may not manage active assignments of {role}.",
        )
