"""What waits for a second PIM Administrator: the *_intercept functions that roles.services
call before they change anything, and how a change to a role's settings loosens them."""

from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from common.text import clean_text

from ..models import EligibleAssignment, PendingChange, Role, RoleSettings
from ..notification_matrix import recipients_parse
from ..scopes import scope_validate
from .decisions import _apply
from .fields import ALLOWED, APPROVAL_ONLY, LONGER, POLICY_FIELDS, RECIPIENTS, STRONGEST, TURNED_OFF, WEAKER
from .payload import _principal_key, _to_json
from .proposals import _beneficiary_ids, _new_change, _propose

Kind = PendingChange.Kind
Status = PendingChange.Status


class _DryRun(Exception):
    """Rolls back the trial run of a change that is about to be stored as pending."""


def two_person_rule_on() -> bool:
    return bool(settings.PIM_TWO_PERSON_RULE)


def settings_loosened(
    current: RoleSettings, proposed: RoleSettings, *, approvers=None, approver_groups=None
) -> list[str]:
    """The settings the proposal loosens (empty: it only tightens, or changes nothing that
    matters). `current` is the row as stored, `proposed` the same row with the new values."""
    from ..services import role_approver_candidates  # services imports this package

    loosened = [field for field in LONGER if getattr(proposed, field) > getattr(current, field)]
    loosened += [field for field in TURNED_OFF if getattr(current, field) and not getattr(proposed, field)]
    loosened += [field for field in ALLOWED if getattr(proposed, field) and not getattr(current, field)]
    loosened += [
        field
        for field in WEAKER
        if getattr(current, field) == STRONGEST and getattr(proposed, field) != STRONGEST
    ]
    if proposed.approvals_required < current.approvals_required:
        loosened.append("approvals_required")
    loosened += [
        field
        for field in RECIPIENTS
        if set(recipients_parse(getattr(current, field))) - set(recipients_parse(getattr(proposed, field)))
    ]
    if approvers is not None or approver_groups is not None:
        could = role_approver_candidates(current)
        will = role_approver_candidates(current, approvers=approvers, approver_groups=approver_groups)
        if will - could:
            loosened.append("approvers")
    if not (current.require_approval and proposed.require_approval):
        loosened = [field for field in loosened if field not in APPROVAL_ONLY]
    return loosened


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
    ticket_number: str = "",
    ticket_system: str = "",
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
    if ticket_number or ticket_system:
        from ..services.assignments import ticket_clean  # services imports this package

        payload["ticket_number"], payload["ticket_system"] = ticket_clean(ticket_number, ticket_system)
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


def _dry_run(action) -> None:
    try:
        with transaction.atomic():
            action()
            raise _DryRun
    except _DryRun:
        pass
