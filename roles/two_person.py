"""The two-person rule: what needs a second PIM Administrator, and the services that propose,
approve, reject, cancel and expire a pending change (roles.models.PendingChange).

What waits, when settings.PIM_TWO_PERSON_RULE is on and a person (not the system) acts:

- an eligible or direct active assignment for oneself, or for a group one is a member of
  (eligible_assign, active_assign), whatever the role, and a later (or no) end for one
  (eligible_update, active_update: the admin's change page); shortening applies at once;
- loosening the settings of a privileged role (role_settings_update): a longer activation,
  eligible or active maximum duration or approval timeout; MFA, justification, ticket or
  approval turned off; permanent eligible or active assignments allowed; fewer approvals
  required; someone who could not approve activations before could now (approvers added, or
  the fallback widened) while approval is required; a notification recipient removed. A change
  that loosens anything waits as a whole, even if it also tightens something else; a change
  that only tightens applies at once;
- un-marking a role as privileged (role_update), which would take its settings out of the rule.

The services in roles.services call the *_intercept functions below before they change
anything; each returns the PendingChange it stored (the caller gets it instead of the changed
object) or None to carry on. On approval the same service applies the change, with
approved_change set so that it does not wait again and with the approver as the actor (their
rights and the role's policy are checked as they are then); its audit event names both people.

Lock order: the row the change applies to (the role's settings, or the role), then the pending
change. Proposals hold that row when they store the change; decisions take it first.
"""

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, cast

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import models, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from accounts.models import DirectoryGroup, User
from audit.refusals import audit_refusal
from audit.services import AuditEntry, audit_record, audit_record_many
from common.text import clean_text
from notifications.services import email_queue

from .models import ActiveAssignment, EligibleAssignment, PendingChange, Role, RoleSettings
from .scopes import scope_validate
from .selectors import PIM_ADMINISTRATOR, pim_administrators, portal_role, user_holds_role

Kind = PendingChange.Kind
Status = PendingChange.Status

LONGER = ("activation_max_duration", "approval_timeout", "eligible_max_duration", "active_max_duration")
TURNED_OFF = (
    "require_mfa",
    "require_justification",
    "require_ticket",
    "require_approval",
    "active_require_mfa",
    "active_require_justification",
)
ALLOWED = ("eligible_allow_permanent", "active_allow_permanent")
# Every role setting, by how it loosens (a test keeps this equal to services.SETTINGS_FIELDS, so
# a new setting cannot be added without saying which way is looser).
POLICY_FIELDS = (*LONGER, *TURNED_OFF, *ALLOWED, "approvals_required", "notification_recipients")
# How the approval page and the email name each setting.
LABELS = {
    "activation_max_duration": "Activation maximum duration",
    "require_mfa": "Require MFA on activation",
    "require_justification": "Require a justification on activation",
    "require_ticket": "Require a ticket on activation",
    "require_approval": "Require approval to activate",
    "approvals_required": "Approvals required",
    "approval_timeout": "Approval timeout",
    "eligible_allow_permanent": "Allow permanent eligible assignments",
    "eligible_max_duration": "Eligible assignments last at most",
    "active_allow_permanent": "Allow permanent active assignments",
    "active_max_duration": "Active assignments last at most",
    "active_require_mfa": "Require MFA for direct active assignments",
    "active_require_justification": "Require a justification for direct active assignments",
    "notification_recipients": "Also notify",
}
# Only matter while approval is required (turning approval on is a tightening, whatever they are).
APPROVAL_ONLY = ("approvals_required", "approval_timeout", "approvers")

SELF_APPROVAL_MESSAGE = "You proposed this change: a second PIM Administrator must approve it."
BENEFICIARY_MESSAGE = "This change would give you access: another PIM Administrator must approve it."
NOT_ADMIN_MESSAGE = (
    "Only a PIM Administrator with the role active can decide pending changes: activate it first."
)
EXPIRE_BATCH = 500


class _DryRun(Exception):
    """Rolls back the trial run of a change that is about to be stored as pending."""


def two_person_rule_on() -> bool:
    return bool(settings.PIM_TWO_PERSON_RULE)


# --- What waits ----------------------------------------------------------------------------


def settings_loosened(
    current: RoleSettings, proposed: RoleSettings, *, approvers=None, approver_groups=None
) -> list[str]:
    """The settings the proposal loosens (empty: it only tightens, or changes nothing that
    matters). `current` is the row as stored, `proposed` the same row with the new values."""
    from .services import role_approver_candidates  # services imports this module

    loosened = [field for field in LONGER if getattr(proposed, field) > getattr(current, field)]
    loosened += [field for field in TURNED_OFF if getattr(current, field) and not getattr(proposed, field)]
    loosened += [field for field in ALLOWED if getattr(proposed, field) and not getattr(current, field)]
    if proposed.approvals_required < current.approvals_required:
        loosened.append("approvals_required")
    if _recipients(current) - _recipients(proposed):
        loosened.append("notification_recipients")
    if approvers is not None or approver_groups is not None:
        could = role_approver_candidates(current)
        will = role_approver_candidates(current, approvers=approvers, approver_groups=approver_groups)
        if will - could:
            loosened.append("approvers")
    if not (current.require_approval and proposed.require_approval):
        loosened = [field for field in loosened if field not in APPROVAL_ONLY]
    return loosened


def _recipients(role_settings: RoleSettings) -> set[str]:
    lines = (role_settings.notification_recipients or "").splitlines()
    return {line.strip().lower() for line in lines if line.strip()}


def settings_change_intercept(
    *, actor: User | None, proposed: RoleSettings, approvers=None, approver_groups=None
) -> PendingChange | None:
    """Called by role_settings_update with the locked row holding the new (validated, unsaved)
    values: store a loosening of a privileged role's settings as pending, or None to go on."""
    role = proposed.role
    if actor is None or not two_person_rule_on() or not role.privileged:
        return None
    current = RoleSettings.objects.get(pk=proposed.pk)  # not saved yet: the stored values
    approvers = _unless_same(approvers, current.approvers.all())
    approver_groups = _unless_same(approver_groups, current.approver_groups.all())
    loosened = settings_loosened(current, proposed, approvers=approvers, approver_groups=approver_groups)
    if not loosened:
        return None
    changed = [f for f in POLICY_FIELDS if getattr(current, f) != getattr(proposed, f)]
    payload: dict[str, Any] = {"changes": {field: _to_json(getattr(proposed, field)) for field in changed}}
    before: dict[str, Any] = {field: _to_json(getattr(current, field)) for field in changed}
    if approvers is not None:
        payload["approvers"] = sorted(user.pk for user in approvers)
        before["approvers"] = sorted(current.approvers.values_list("pk", flat=True))
    if approver_groups is not None:
        payload["approver_groups"] = sorted(group.pk for group in approver_groups)
        before["approver_groups"] = sorted(current.approver_groups.values_list("pk", flat=True))
    if PendingChange.objects.filter(role=role, kind=Kind.ROLE_SETTINGS, status=Status.PENDING).exists():
        raise ValidationError(
            f"A loosening of the settings of {role} already waits for a second PIM Administrator: "
            "it must be decided or canceled first (see Pending changes)."
        )
    change = _new_change(Kind.ROLE_SETTINGS, actor, role, payload, before)
    return _propose(change, details={"loosens": loosened})


def role_change_intercept(*, actor: User | None, role: Role, changes: dict) -> PendingChange | None:
    """Called by role_update with the role locked: un-marking a privileged role as privileged
    (which takes its settings out of the rule) waits, with the rest of that change."""
    if actor is None or not two_person_rule_on():
        return None
    if not (role.privileged and "privileged" in changes and not changes["privileged"]):
        return None
    before = {field: getattr(role, field) for field in changes}
    change = _new_change(Kind.ROLE, actor, role, {"changes": dict(changes)}, before)
    return _propose(change, details={"loosens": ["privileged"]})


def self_grant_intercept(
    *,
    kind: str,
    actor: User | None,
    role: Role,
    principal,
    scope: str,
    starts_at: datetime | None,
    ends_at: datetime | None,
    justification: str,
    mfa_verified_at: datetime | None = None,
    now: datetime,
) -> PendingChange | None:
    """Called by eligible_assign / active_assign (kind "eligible" / "active") before anything
    changes: an assignment for the actor, or for a group the actor is in, waits."""
    if actor is None or not two_person_rule_on() or actor.pk not in _beneficiary_ids(principal):
        return None
    payload = {
        "principal": _principal_key(principal),
        "scope": scope_validate(scope, kind=role.kind),
        "starts_at": _to_json(starts_at),
        "ends_at": _to_json(ends_at),
        "justification": clean_text(justification, field="justification"),
    }
    change_kind = Kind.SELF_ELIGIBLE if kind == "eligible" else Kind.SELF_ACTIVE
    change = _new_change(change_kind, actor, role, payload, {}, now=now)
    # A trial run of the real service, rolled back, so that what it would refuse (the role's
    # policy, an overlapping assignment, a bad scope) is refused now rather than on approval.
    _dry_run(lambda: _apply(change, actor=actor, mfa_verified_at=mfa_verified_at, now=now))
    return _propose(change, details={})


def self_extension_intercept(
    *, actor: User | None, assignment, ends_at: datetime | None, justification: str, now: datetime | None
) -> PendingChange | None:
    """Called by eligible_update / active_update: making one's own assignment (or a group's one
    is in) last longer, or permanent, waits; shortening it applies at once."""
    if actor is None or not two_person_rule_on() or actor.pk not in _beneficiary_ids(assignment.principal):
        return None
    if not _longer(ends_at, assignment.ends_at):
        return None
    now = now or timezone.now()
    kind = Kind.SELF_ELIGIBLE if isinstance(assignment, EligibleAssignment) else Kind.SELF_ACTIVE
    payload = {
        "assignment": str(assignment.pk),
        "principal": _principal_key(assignment.principal),
        "scope": assignment.scope,
        "starts_at": _to_json(assignment.starts_at),
        "ends_at": _to_json(ends_at),
        "justification": clean_text(justification, field="justification"),
    }
    change = _new_change(kind, actor, assignment.role, payload, {"ends_at": assignment.ends_at}, now=now)
    _dry_run(lambda: _apply(change, actor=actor, mfa_verified_at=None, now=now))
    return _propose(change, details={"loosens": ["ends_at"]})


def _longer(proposed_end: datetime | None, current_end: datetime | None) -> bool:
    if current_end is None:
        return False  # permanent already: any end shortens it
    return proposed_end is None or proposed_end > current_end


def _unless_same(wanted, current_qs):
    """None when the wanted set of people or groups is the current one (no change to it)."""
    if wanted is None:
        return None
    wanted = list(wanted)
    return None if {obj.pk for obj in wanted} == set(current_qs.values_list("pk", flat=True)) else wanted


def _beneficiary_ids(principal) -> set:
    """Who an assignment to the principal gives access to: the user, or a group's members."""
    if isinstance(principal, User):
        return {principal.pk}
    return set(principal.members.values_list("pk", flat=True))


def change_beneficiary_ids(change: PendingChange) -> set:
    if change.kind not in (Kind.SELF_ELIGIBLE, Kind.SELF_ACTIVE):
        return set()
    principal = _principal(change.payload["principal"])
    return _beneficiary_ids(principal) if principal is not None else set()


def _dry_run(action) -> None:
    try:
        with transaction.atomic():
            action()
            raise _DryRun
    except _DryRun:
        pass


# --- Proposing -----------------------------------------------------------------------------


def _new_change(kind, actor, role, payload, before, *, now=None) -> PendingChange:
    now = now or timezone.now()
    return PendingChange(
        kind=kind,
        role=role,
        payload=payload,
        before=_jsonable(before),
        proposer=actor,
        status=Status.PENDING,
        created_at=now,
        decide_by=now + timedelta(hours=settings.PIM_TWO_PERSON_DECIDE_HOURS),
    )


def _propose(change: PendingChange, *, details: dict) -> PendingChange:
    """Store the change, audit it and ask every other PIM Administrator (in the caller's
    transaction). Refused if nobody else could approve it."""
    deciders = pending_change_deciders(change)
    if not deciders:
        raise ValidationError(
            "This change needs a second PIM Administrator's approval (the two-person rule), and "
            "there is no other PIM Administrator: make someone else eligible for PIM Administrator first."
        )
    with transaction.atomic():
        change.save()
        rows = pending_change_rows(change)
        audit_record(
            action="pending_change.proposed",
            actor=change.proposer,
            target=change,
            role=change.role,
            scope=change.payload.get("scope", ""),
            details={
                "kind": change.kind,
                "proposed_by": change.proposer.label,
                "changes": {row["field"]: {"before": row["now"], "after": row["proposed"]} for row in rows},
                "decide_by": change.decide_by,
                **details,
            },
            at=change.created_at,
        )
        for decider in deciders:
            email_queue(
                recipients=[decider],
                template="pending-change-request",
                now=change.created_at,
                context={"change": change, "rows": rows, "link": _link(change)},
            )
    return change


def pending_change_deciders(change: PendingChange) -> list[User]:
    """Who is asked to decide: the PIM Administrators (eligible or active) other than the
    proposer and anyone the change would give access to."""
    excluded = {change.proposer_id} | change_beneficiary_ids(change)
    return [user for user in pim_administrators() if user.pk not in excluded]


def _link(change: PendingChange) -> str:
    return f"{settings.PIM_BASE_URL}{change.get_absolute_url()}"


# --- Deciding ------------------------------------------------------------------------------


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
    from . import services  # services imports this module (for the intercepts)

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
    if mfa_verified_at is None or now - mfa_verified_at > settings.PIM_STEP_UP_WINDOW:
        raise PermissionDenied("Deciding a pending change needs a fresh MFA verification.")


def _label(obj) -> str:
    return str(getattr(obj, "label", None) or obj)


# --- What the change says (the approval page and the email) --------------------------------


def pending_change_rows(change: PendingChange) -> list[dict]:
    """One row per field: its label, the value now (as stored today; for a change already
    decided, as it was when proposed) and the proposed one, and whether that loosens it."""
    if change.kind == Kind.ROLE_SETTINGS:
        return _settings_rows(change)
    if change.kind == Kind.ROLE:
        current = change.role if change.status == Status.PENDING else None
        rows = []
        for field, proposed in change.payload["changes"].items():
            now_value = getattr(current, field) if current is not None else change.before.get(field)
            role_field = cast("models.Field[Any, Any]", Role._meta.get_field(field))  # not a relation
            rows.append(_row(field, str(role_field.verbose_name), now_value, proposed))
        return rows
    payload = change.payload
    principal = _principal(payload["principal"])
    starts_at = _from_json("starts_at", payload["starts_at"])
    ends_at = _from_json("ends_at", payload["ends_at"])
    who = principal.label if principal is not None else "(no longer exists)"
    if "assignment" in payload:  # a longer end for an existing assignment
        facts = [
            ("principal", "For", who, who),
            ("scope", "Scope", payload["scope"], payload["scope"]),
            ("ends_at", "Ends", _end(_from_json("ends_at", change.before.get("ends_at"))), _end(ends_at)),
            ("justification", "Justification", "—", payload["justification"] or "—"),
        ]
    else:
        starts = f"{starts_at:%Y-%m-%d %H:%M} UTC (or when approved)" if starts_at else "When approved"
        facts = [
            ("principal", "For", "—", who),
            ("scope", "Scope", "—", payload["scope"]),
            ("starts_at", "Starts", "—", starts),
            ("ends_at", "Ends", "—", _end(ends_at)),
            ("justification", "Justification", "—", payload["justification"] or "—"),
        ]
    return [
        {
            "field": field,
            "label": label,
            "now": now,
            "proposed": value,
            "loosens": field == "ends_at" and now != "—",
        }
        for field, label, now, value in facts
    ]


def _end(moment: datetime | None) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC" if moment else "Never (permanent)"


def _settings_rows(change: PendingChange) -> list[dict]:
    payload = change.payload
    live = change.status == Status.PENDING
    current = RoleSettings.objects.get(role_id=change.role_id) if live else None
    rows = []
    for field, value in payload["changes"].items():
        now_value = getattr(current, field) if live else _from_json(field, change.before.get(field))
        rows.append(_row(field, LABELS[field], now_value, _from_json(field, value)))
    for field, model, label in (
        ("approvers", User, "approvers"),
        ("approver_groups", DirectoryGroup, "approver groups"),
    ):
        if field not in payload:
            continue
        now_ids = (
            set(getattr(current, field).values_list("pk", flat=True)) if live else set(change.before[field])
        )
        rows.append(
            {
                "field": field,
                "label": label.capitalize(),
                "now": _names(model, now_ids),
                "proposed": _names(model, set(payload[field])),
                "loosens": bool(set(payload[field]) - now_ids),
            }
        )
    return rows


def _row(field: str, label: str, now_value, proposed) -> dict:
    loosens = (
        (field in LONGER and proposed > now_value)
        or (field in TURNED_OFF and bool(now_value) and not proposed)
        or (field in ALLOWED and bool(proposed) and not now_value)
        or (field == "approvals_required" and proposed < now_value)
        or (field == "privileged" and bool(now_value) and not proposed)
        or (field == "notification_recipients" and bool(_lines(now_value) - _lines(proposed)))
    )
    return {
        "field": field,
        "label": str(label)[:1].upper() + str(label)[1:],
        "now": _display(now_value),
        "proposed": _display(proposed),
        "loosens": bool(loosens),
    }


def _lines(value) -> set[str]:
    return {line.strip().lower() for line in str(value or "").splitlines() if line.strip()}


def _display(value) -> str:
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, timedelta):
        return _human(value)
    if value is None or value == "":
        return "—"
    return str(value)


def _human(duration: timedelta) -> str:
    seconds = int(duration.total_seconds())
    if seconds % 86400 == 0:
        days = seconds // 86400
        return f"{days} day{'s' if days != 1 else ''}"
    if seconds % 3600 == 0:
        hours = seconds // 3600
        return f"{hours} hour{'s' if hours != 1 else ''}"
    return f"{seconds // 60} minutes"


def _names(model, ids: set) -> str:
    names = sorted(_label(obj) for obj in model.objects.filter(pk__in=ids))
    return ", ".join(names) or "—"


# --- JSON ----------------------------------------------------------------------------------

_DATETIME_FIELDS = ("starts_at", "ends_at")


def _to_json(value):
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _jsonable(values: dict) -> dict:
    return {key: _to_json(value) for key, value in values.items()}


def _from_json(field: str, value):
    if value is None:
        return None
    if field in _DATETIME_FIELDS:
        return parse_datetime(value)
    if field in LONGER:  # the durations
        return timedelta(seconds=value)
    return value


def _principal_key(principal) -> dict:
    return {"user": principal.pk} if isinstance(principal, User) else {"group": principal.pk}


def _principal(key: dict):
    if "user" in key:
        return User.objects.filter(pk=key["user"]).first()
    return DirectoryGroup.objects.filter(pk=key["group"]).first()


def _objects(model, ids):
    return None if ids is None else list(model.objects.filter(pk__in=ids))
