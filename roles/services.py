"""Services that change roles, role settings and assignments.

Every public function here is one audited state change: it checks who is acting, locks the
rows it changes, re-checks the live state and the role's policy, changes it and writes its
audit event, all in one transaction. Views, the admin, the API, tasks and commands call these.
"""

from datetime import datetime, timedelta

from django.conf import settings as django_settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from guardian.shortcuts import assign_perm, remove_perm

from accounts.models import DirectoryGroup, User
from audit.services import AuditEntry, audit_record, audit_record_many
from common.text import clean_text

from .directory_services import directory_operation_enqueue
from .models import (
    ActiveAssignment,
    DirectoryOperation,
    EligibleAssignment,
    PendingChange,
    Role,
    RoleSettings,
)
from .scopes import scope_validate
from .selectors import pim_administrators, role_holders, user_can_manage_active, user_can_manage_eligible
from .signals import active_assignment_ended
from .two_person import (
    approval_details,
    role_change_intercept,
    self_extension_intercept,
    self_grant_intercept,
    settings_change_intercept,
)

# Object permissions a role's owners get on that role (delegated administration).
OWNER_PERMISSIONS = ("manage_eligible_assignments", "approve_activation", "review_access")
# Backdating is refused: an assignment cannot claim to have started before it was made.
_BACKDATE_TOLERANCE = timedelta(minutes=1)


class LockoutError(ValidationError):
    """The change would leave a lockout-protected role with nobody who can use it."""


Principal = User | DirectoryGroup


# --- Role catalog and settings -------------------------------------------------------------

SETTINGS_FIELDS = (
    "activation_max_duration",
    "require_mfa",
    "require_justification",
    "require_ticket",
    "require_approval",
    "approvals_required",
    "approval_timeout",
    "eligible_allow_permanent",
    "eligible_max_duration",
    "active_allow_permanent",
    "active_max_duration",
    "active_require_mfa",
    "active_require_justification",
    "notification_recipients",
)


def role_create(
    *,
    actor: User | None,
    name: str,
    kind: str = Role.Kind.APP,
    description: str = "",
    template_id: str = "",
    privileged: bool = True,
    tier: str = Role.Tier.HIGH,
) -> Role:
    """Add a custom role to the catalog (with default settings)."""
    _require_perm(actor, "roles.add_role")
    name = clean_text(name, field="name", required=True, max_length=200)
    if kind not in Role.Kind.values or tier not in Role.Tier.values:
        raise ValidationError("Unknown role kind or tier.")
    with transaction.atomic():
        if Role.objects.filter(name__iexact=name).exists():
            raise ValidationError({"name": f"A role named “{name}” already exists."})
        role = Role.objects.create(
            name=name,
            kind=kind,
            description=clean_text(description, field="description"),
            template_id=template_id,
            privileged=privileged,
            tier=tier,
        )
        RoleSettings.objects.create(role=role)
        audit_record(
            action="role.created",
            actor=actor,
            target=role,
            role=role,
            details={"after": {"name": name, "kind": kind, "tier": tier, "privileged": privileged}},
        )
    return role


def role_update(
    *, actor: User | None, role: Role, changes: dict, approved_change: PendingChange | None = None
) -> Role | PendingChange:
    """Change a role's descriptive fields (name, description, tier, privileged). Un-marking a
    privileged role waits for a second PIM Administrator (roles.two_person)."""
    _require_perm(actor, "roles.change_role")
    allowed = {"name", "description", "tier", "privileged"}
    if set(changes) - allowed:
        raise ValidationError(f"Only {', '.join(sorted(allowed))} can be changed.")
    with transaction.atomic():
        role = Role.objects.select_for_update().get(pk=role.pk)
        before = {field: getattr(role, field) for field in changes}
        if "name" in changes:
            changes["name"] = clean_text(changes["name"], field="name", required=True, max_length=200)
            if Role.objects.filter(name__iexact=changes["name"]).exclude(pk=role.pk).exists():
                raise ValidationError({"name": f"A role named “{changes['name']}” already exists."})
        if "description" in changes:
            changes["description"] = clean_text(changes["description"], field="description")
        if "tier" in changes and changes["tier"] not in Role.Tier.values:
            raise ValidationError({"tier": "Unknown tier."})
        if not approved_change and (
            pending := role_change_intercept(actor=actor, role=role, changes=changes)
        ):
            return pending  # the two-person rule: applied when a second PIM Administrator approves
        for field, value in changes.items():
            setattr(role, field, value)
        role.save(update_fields=list(changes))
        diff = {f: {"before": before[f], "after": changes[f]} for f in changes if before[f] != changes[f]}
        details = {"changes": diff, **approval_details(approved_change)}
        audit_record(action="role.changed", actor=actor, target=role, role=role, details=details)
    return role


def role_settings_update(
    *,
    actor: User | None,
    role: Role,
    changes: dict,
    approvers: list[User] | None = None,
    approver_groups: list[DirectoryGroup] | None = None,
    approved_change: PendingChange | None = None,
) -> RoleSettings | PendingChange:
    """Change a role's policy; the audit event carries the before/after diff. Loosening a
    privileged role's policy waits for a second PIM Administrator (roles.two_person)."""
    _require_perm(actor, "roles.change_rolesettings")
    unknown = set(changes) - set(SETTINGS_FIELDS)
    if unknown:
        raise ValidationError(f"Unknown role settings: {', '.join(sorted(unknown))}.")
    with transaction.atomic():
        role_settings = RoleSettings.objects.select_for_update().get(role=role)
        before = _settings_snapshot(role_settings)
        for field, value in changes.items():
            setattr(role_settings, field, value)
        if "notification_recipients" in changes:
            role_settings.notification_recipients = clean_text(
                changes["notification_recipients"], field="notification_recipients"
            )
        role_settings_validate(role_settings, approvers=approvers, approver_groups=approver_groups)
        if not approved_change and (
            pending := settings_change_intercept(
                actor=actor, proposed=role_settings, approvers=approvers, approver_groups=approver_groups
            )
        ):
            return pending  # the two-person rule: applied when a second PIM Administrator approves
        role_settings.save()
        if approvers is not None:
            role_settings.approvers.set(approvers)
        if approver_groups is not None:
            role_settings.approver_groups.set(approver_groups)
        after = _settings_snapshot(role_settings)
        diff = {
            key: {"before": before[key], "after": after[key]} for key in after if before[key] != after[key]
        }
        details = {"changes": diff, **approval_details(approved_change)}
        audit_record(action="role_settings.changed", actor=actor, target=role, role=role, details=details)
    return role_settings


def _settings_snapshot(role_settings: RoleSettings) -> dict:
    snapshot = {field: getattr(role_settings, field) for field in SETTINGS_FIELDS}
    for field, value in snapshot.items():
        if isinstance(value, timedelta):
            snapshot[field] = int(value.total_seconds())
    snapshot["approvers"] = sorted(role_settings.approvers.values_list("username", flat=True))
    snapshot["approver_groups"] = sorted(role_settings.approver_groups.values_list("name", flat=True))
    return snapshot


def _validate_settings(role_settings: RoleSettings) -> None:
    errors = {}
    if not timedelta(minutes=30) <= role_settings.activation_max_duration <= timedelta(hours=24):
        errors["activation_max_duration"] = (
            "The activation maximum duration must be between 30 minutes and 24 hours."
        )
    if not 1 <= role_settings.approvals_required <= 10:
        errors["approvals_required"] = "Between 1 and 10 approvals can be required."
    if not timedelta(hours=1) <= role_settings.approval_timeout <= timedelta(days=14):
        errors["approval_timeout"] = "The approval timeout must be between 1 hour and 14 days."
    for field in ("eligible_max_duration", "active_max_duration"):
        if (
            not django_settings.PIM_MIN_ASSIGNMENT_DURATION
            <= getattr(role_settings, field)
            <= timedelta(days=3650)
        ):
            errors[field] = "The maximum assignment duration must be between 5 minutes and 10 years."
    if errors:
        raise ValidationError(errors)


def role_approver_candidates(
    role_settings: RoleSettings, *, approvers=None, approver_groups=None
) -> set[User]:
    """Who could approve activations of the role: the named approvers and approver groups'
    members; failing those the role's owners; failing those the PIM Administrators."""
    approvers = role_settings.approvers.all() if approvers is None else approvers
    approver_groups = role_settings.approver_groups.all() if approver_groups is None else approver_groups
    named = {user for user in approvers if user.is_active}
    named |= set(User.objects.filter(directory_groups__in=list(approver_groups), is_active=True))
    if named:
        return named
    owners = set(role_settings.role.owners.filter(is_active=True))
    if owners:
        return owners
    return set(pim_administrators())


def role_settings_validate(role_settings: RoleSettings, *, approvers=None, approver_groups=None) -> None:
    """The policy's own consistency (also used by forms to show errors next to fields)."""
    _validate_settings(role_settings)
    if role_settings.require_approval:
        candidates = role_approver_candidates(
            role_settings, approvers=approvers, approver_groups=approver_groups
        )
        if len(candidates) < role_settings.approvals_required:
            raise ValidationError(
                {
                    "require_approval": (
                        f"{role_settings.approvals_required} approval(s) are required but only "
                        f"{len(candidates)} person(s) could approve: name more approvers first."
                    )
                }
            )


def role_owner_add(*, actor: User | None, role: Role, user: User) -> None:
    """Make the user an owner: they manage the role's eligibilities and approve and review it."""
    _require_perm(actor, "roles.change_role")
    with transaction.atomic():
        Role.objects.select_for_update().get(pk=role.pk)
        if role.owners.filter(pk=user.pk).exists():
            raise ValidationError(f"{user} already owns {role}.")
        role.owners.add(user)
        for codename in OWNER_PERMISSIONS:
            assign_perm(f"roles.{codename}", user, role)
        audit_record(action="role.owner_added", actor=actor, target=user, role=role)


def role_owner_remove(*, actor: User | None, role: Role, user: User) -> None:
    _require_perm(actor, "roles.change_role")
    with transaction.atomic():
        Role.objects.select_for_update().get(pk=role.pk)
        if not role.owners.filter(pk=user.pk).exists():
            raise ValidationError(f"{user} does not own {role}.")
        role.owners.remove(user)
        for codename in OWNER_PERMISSIONS:
            remove_perm(f"roles.{codename}", user, role)
        audit_record(action="role.owner_removed", actor=actor, target=user, role=role)


# --- Eligible assignments ------------------------------------------------------------------


def eligible_assign(
    *,
    actor: User | None,
    role: Role,
    principal: Principal,
    scope: str = "/",
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    justification: str = "",
    now: datetime | None = None,
    approved_change: PendingChange | None = None,
) -> EligibleAssignment | PendingChange:
    """Make a user or group eligible to activate the role at the scope. An eligibility for
    oneself (or a group one is in) waits for a second PIM Administrator (roles.two_person)."""
    _require_manage_eligible(actor, role)
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
        now=now,
        extra={},
        details=approval_details(approved_change),
    )


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
    _require_manage_eligible(actor, assignment.role)
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


def eligible_extend(
    *,
    actor: User | None,
    assignment: EligibleAssignment,
    ends_at: datetime,
    justification: str = "",
    now: datetime | None = None,
) -> EligibleAssignment:
    """Move the end of a time-bound eligibility later."""
    _require_manage_eligible(actor, assignment.role)
    return _update(
        assignment, actor=actor, ends_at=ends_at, justification=justification, now=now, verb="extended"
    )


def eligible_renew(
    *,
    actor: User | None,
    assignment: EligibleAssignment,
    ends_at: datetime | None,
    justification: str = "",
    now: datetime | None = None,
) -> EligibleAssignment:
    """Grant an ended eligibility again, from now (a new assignment; the old one stays as history)."""
    _require_manage_eligible(actor, assignment.role)
    return _renew(assignment, actor=actor, ends_at=ends_at, justification=justification, now=now)


def eligible_remove(
    *,
    actor: User | None,
    assignment: EligibleAssignment,
    reason: str = "",
    end_reason: str = EligibleAssignment.EndReason.REMOVED,
    now: datetime | None = None,
) -> EligibleAssignment:
    """End an eligibility now, and any activation of it that is still live."""
    _require_manage_eligible(actor, assignment.role)
    now = now or timezone.now()
    reason = clean_text(reason, field="reason")
    with transaction.atomic():
        assignment = _lock_open(EligibleAssignment, assignment.pk, now)
        _ensure_lockout_safe(assignment.role, removing=assignment, now=now)
        _end(assignment, actor=actor, reason=end_reason, now=now)
        entries = [
            _entry(
                "eligible_assignment.removed", actor, assignment, {"reason": reason, "end_reason": end_reason}
            )
        ]
        # Every activation of it that has not ended, including one scheduled to start later
        # (current(now) would leave that one to start from a removed eligibility).
        live = (
            ActiveAssignment.objects.select_for_update()
            .filter(eligible=assignment, ended_at__isnull=True)
            .exclude(ends_at__lte=now)
        )
        for activation in live:
            _end(activation, actor=actor, reason=ActiveAssignment.EndReason.REMOVED, now=now)
            entries.append(
                _entry(
                    "active_assignment.ended",
                    actor,
                    activation,
                    {"end_reason": "removed", "because": "eligibility removed"},
                )
            )
        audit_record_many(entries=entries, at=now)
    return assignment


# --- Active assignments --------------------------------------------------------------------


def active_assign(
    *,
    actor: User | None,
    role: Role,
    principal: Principal,
    scope: str = "/",
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    justification: str = "",
    mfa_verified_at: datetime | None = None,
    now: datetime | None = None,
    approved_change: PendingChange | None = None,
) -> ActiveAssignment | PendingChange:
    """Directly assign the role (no activation needed): the admin's own policy checks apply.
    An assignment to oneself (or a group one is in) waits for a second PIM Administrator."""
    _require_manage_active(actor, role)
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
        now=now,
        policy=_active_admin_policy(actor, justification, mfa_verified_at, now),
        extra={"origin": ActiveAssignment.Origin.DIRECT},
        details=approval_details(approved_change),
    )


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
    _require_manage_active(actor, assignment.role)
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


def active_extend(
    *,
    actor: User | None,
    assignment: ActiveAssignment,
    ends_at: datetime,
    justification: str = "",
    now: datetime | None = None,
) -> ActiveAssignment:
    _require_manage_active(actor, assignment.role)
    return _update(
        assignment, actor=actor, ends_at=ends_at, justification=justification, now=now, verb="extended"
    )


def active_renew(
    *,
    actor: User | None,
    assignment: ActiveAssignment,
    ends_at: datetime | None,
    justification: str = "",
    now: datetime | None = None,
) -> ActiveAssignment:
    _require_manage_active(actor, assignment.role)
    return _renew(assignment, actor=actor, ends_at=ends_at, justification=justification, now=now)


def active_remove(
    *,
    actor: User | None,
    assignment: ActiveAssignment,
    reason: str = "",
    end_reason: str = ActiveAssignment.EndReason.REVOKED,
    now: datetime | None = None,
) -> ActiveAssignment:
    """End an active assignment now (admin revoke)."""
    _require_manage_active(actor, assignment.role)
    now = now or timezone.now()
    reason = clean_text(reason, field="reason")
    with transaction.atomic():
        assignment = _lock_open(ActiveAssignment, assignment.pk, now)
        _ensure_lockout_safe(assignment.role, removing=assignment, now=now)
        _end(assignment, actor=actor, reason=end_reason, now=now)
        audit_record(
            action="active_assignment.removed",
            actor=actor,
            target=assignment,
            role=assignment.role,
            scope=assignment.scope,
            details={"reason": reason, "end_reason": end_reason},
            at=now,
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
            ActiveAssignment.objects.select_for_update()
            .filter(user=user, ended_at__isnull=True)
            .exclude(ends_at__lte=now)
            .select_related("role")
        )
        entries = []
        for assignment in open_assignments:
            _end(assignment, actor=actor, reason=ActiveAssignment.EndReason.REVOKED, now=now)
            entries.append(
                _entry(
                    "active_assignment.revoked",
                    actor,
                    assignment,
                    {"reason": clean_text(reason, field="reason")},
                )
            )
        audit_record_many(entries=entries, at=now)
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
        )
        entries = []
        for assignment in derived:
            _ensure_lockout_safe(assignment.role, removing=assignment, now=now)
            _end(assignment, actor=actor, reason=ActiveAssignment.EndReason.REMOVED, now=now)
            because = f"{user.label} left {group.label}"
            details = {"end_reason": "removed", "because": because}
            entries.append(_entry("active_assignment.ended", actor, assignment, details))
        # Checked after those ended: role_holders no longer counts them.
        if user.is_active and not group.members.filter(is_active=True).exclude(pk=user.pk).exists():
            for role in Role.objects.filter(lockout_protected=True):
                _ensure_lockout_safe(role, removing_group=group, now=now)
        audit_record_many(entries=entries, at=now)
    return len(derived)


# --- Shared mechanics ----------------------------------------------------------------------


def _assign(
    model,
    *,
    actor,
    role,
    principal,
    scope,
    starts_at,
    ends_at,
    justification,
    now,
    extra=None,
    policy=None,
    details=None,
):
    """Create an assignment after locking the role's settings and checking them (policy() may
    check more and returns the cleaned justification)."""
    extra = extra or {}
    kind = "eligible" if model is EligibleAssignment else "active"
    scope = scope_validate(scope, kind=role.kind)
    justification = clean_text(justification, field="justification")
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
            created_by=actor,
            **extra,
        )
        if model is ActiveAssignment:
            directory_operation_enqueue(
                assignment=assignment, operation=DirectoryOperation.Operation.GRANT, now=now
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
                **{key: str(value) for key, value in extra.items()},
                **(details or {}),
            },
            at=now,
        )
    return assignment


def _update(assignment, *, actor, ends_at, justification, now, verb, details=None):
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
            _ensure_lockout_safe(assignment.role, removing=assignment, now=now)
        before = {"ends_at": assignment.ends_at}
        assignment.ends_at = ends_at
        assignment.save(update_fields=["ends_at"])
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


def _renew(assignment, *, actor, ends_at, justification, now, policy=None):
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


def _active_admin_policy(actor, justification, mfa_verified_at, now):
    """The role's rules for whoever makes a direct active assignment (MFA, justification)."""

    def check(role_settings: RoleSettings) -> str:
        if role_settings.active_require_mfa and actor is not None:
            _require_fresh_mfa(mfa_verified_at, now)
        return clean_text(
            justification, field="justification", required=role_settings.active_require_justification
        )

    return check


def _lock_open(model, pk, now):
    """Lock the assignment and make sure it has not ended (it may not have started yet)."""
    assignment = model.objects.select_for_update(of=("self",)).select_related("role").get(pk=pk)
    if assignment.ended_at is not None and assignment.ended_at <= now:
        raise ValidationError("This assignment has already ended.")
    if assignment.ends_at is not None and assignment.ends_at <= now:
        raise ValidationError("This assignment has already expired; renew it instead.")
    return assignment


def _end(assignment, *, actor, reason, now) -> None:
    assignment.ended_at = now
    assignment.ended_by = actor
    assignment.end_reason = reason
    assignment.save(update_fields=["ended_at", "ended_by", "end_reason"])
    if isinstance(assignment, ActiveAssignment):
        directory_operation_enqueue(
            assignment=assignment, operation=DirectoryOperation.Operation.REVOKE, now=now
        )
        # An activation of this assignment closes too (activations listens, same transaction).
        active_assignment_ended.send(
            sender=ActiveAssignment, assignment=assignment, actor=actor, reason=reason, now=now
        )


def active_assignment_create_for_activation(
    *,
    eligible: EligibleAssignment,
    user: User,
    scope: str,
    starts_at: datetime,
    ends_at: datetime,
    justification: str,
    now: datetime,
) -> ActiveAssignment:
    """The active assignment behind a granted activation (activations audits the grant;
    the policy was checked by the activation services under their locks)."""
    assignment = ActiveAssignment.objects.create(
        user=user,
        role_id=eligible.role_id,
        scope=scope,
        starts_at=starts_at,
        ends_at=ends_at,
        justification=justification,
        origin=ActiveAssignment.Origin.ACTIVATION,
        eligible=eligible,
        created_by=user,
    )
    directory_operation_enqueue(assignment=assignment, operation=DirectoryOperation.Operation.GRANT, now=now)
    return assignment


def active_assignment_end(
    *, actor: User | None, assignment: ActiveAssignment, reason: str, now: datetime
) -> None:
    """End a locked, live active assignment: for activations' deactivate / revoke (it writes
    its own audit event for the request)."""
    _end(assignment, actor=actor, reason=reason, now=now)


def _entry(action, actor, assignment, details) -> AuditEntry:
    return AuditEntry(
        action=action,
        actor=actor,
        target=assignment,
        role=assignment.role,
        scope=assignment.scope,
        details=details,
    )


def _validate_window(role_settings, kind, *, starts_at, ends_at, now, measure_from, new=False) -> None:
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


def _ensure_principal_usable(principal) -> None:
    if isinstance(principal, User) and not principal.is_active:
        raise ValidationError(f"{principal} is deactivated and cannot be assigned roles.")


def _ensure_lockout_safe(
    role: Role,
    *,
    now,
    removing=None,
    removing_user: User | None = None,
    removing_group: DirectoryGroup | None = None,
) -> None:
    """Anti-lockout: never leave a protected role without a holder, nor take away its last
    permanent holder (so the last eligibility cannot lapse at its end either).

    What goes: one assignment (removing), a user with their sole-member groups
    (removing_user), or a group's assignments (removing_group: its last active member leaves)."""
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


def _require_fresh_mfa(mfa_verified_at: datetime | None, now: datetime) -> None:
    if mfa_verified_at is None or now - mfa_verified_at > django_settings.PIM_STEP_UP_WINDOW:
        raise PermissionDenied("This change needs a fresh MFA verification.")


def _require_perm(actor: User | None, perm: str) -> None:
    if actor is not None and not actor.has_perm(perm):
        raise PermissionDenied("You may not do this.")


def _require_manage_eligible(actor: User | None, role: Role) -> None:
    if actor is not None and not user_can_manage_eligible(user=actor, role=role):
        raise PermissionDenied(f"You may not manage eligible assignments of {role}.")


def _require_manage_active(actor: User | None, role: Role) -> None:
    if actor is not None and not user_can_manage_active(user=actor, role=role):
        raise PermissionDenied(f"You may not manage active assignments of {role}.")
