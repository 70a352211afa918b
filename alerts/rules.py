"""The alert rules (SPEC 2.6; Entra's catalog in research/entra-pim.md §7).

Each rule is a small function of the time that returns its findings: a key (what the alert is
about; "" for a tenant-wide condition), the affected items and the reason. Rules read with a
few aggregate queries each, whatever the number of assignments; thresholds are settings
(PIM_ALERT_*) with Entra's defaults.
"""

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from django.conf import settings
from django.db import models
from django.db.models import Count, Exists, OuterRef, Q, Subquery

from accounts.models import DirectoryGroup, SignInSource, User
from audit.models import AuditEvent
from reviews.models import ReviewInstance
from roles.models import ActiveAssignment, DirectoryOperation, EligibleAssignment, Role

GLOBAL_ADMINISTRATOR = "62e90394-69f5-4237-9190-012177145e10"
BREAK_GLASS_ACTION = "auth.break_glass_sign_in"
# Every sign-in the portal knows of: its own, and those Entra saw (ENTRA_SIGN_IN_ACTIVITY).
SIGN_IN_FIELDS = ("last_sign_in_at", "directory_sign_in_at", "directory_non_interactive_sign_in_at")
BREAK_GLASS_REQUEST_ACTION = "auth.break_glass_request"


class Severity(models.TextChoices):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


@dataclass(frozen=True)
class Finding:
    """One alert's worth of a rule's answer."""

    key: str
    items: list
    reason: str


@dataclass(frozen=True)
class AlertKind:
    """What an alert kind is: its title, severity, description, mitigation and fix."""

    title: str
    severity: str
    description: str
    mitigation: str
    rule: Callable[..., list[Finding]]
    fix: str = ""  # the label of the one-click fix on each item, "" if none
    impact: str = ""
    extra: dict = field(default_factory=dict)


def item(kind: str, obj, label: str) -> dict:
    return {"type": kind, "id": str(obj.pk), "label": label}


def _role_item(role) -> dict:
    return item("role", role, role.name)


def _assignment_label(assignment) -> str:
    principal = assignment.user.label if assignment.user_id else assignment.group.label
    until = "permanent" if assignment.ends_at is None else f"until {assignment.ends_at:%Y-%m-%d}"
    return f"{assignment.role.name} — {principal} at {assignment.scope} ({until})"


def _still_open(now: datetime) -> Q:
    """Assignments in force now or later (not ended, not expired)."""
    return Q(ended_at__isnull=True) & (Q(ends_at__isnull=True) | Q(ends_at__gt=now))


def _one(items: list, reason: str) -> list[Finding]:
    return [Finding(key="", items=items, reason=reason)] if items else []


def _privileged_roles():
    return Role.objects.filter(privileged=True).select_related("settings").order_by("name")


# --- Role settings ------------------------------------------------------------------------


def roles_without_mfa(*, now: datetime) -> list[Finding]:
    roles = _privileged_roles().filter(settings__require_mfa=False)
    return _one(
        [_role_item(role) for role in roles],
        "These privileged roles can be activated without a multifactor authentication check.",
    )


def critical_roles_without_approval(*, now: datetime) -> list[Finding]:
    roles = _privileged_roles().filter(tier=Role.Tier.CRITICAL, settings__require_approval=False)
    return _one(
        [_role_item(role) for role in roles],
        "Anyone eligible for these critical roles activates them without anybody approving.",
    )


def long_activation_duration(*, now: datetime) -> list[Finding]:
    limit = timedelta(hours=settings.PIM_ALERT_MAX_ACTIVATION_HOURS)
    roles = _privileged_roles().filter(settings__activation_max_duration__gt=limit)
    items = [
        {**_role_item(role), "label": f"{role.name} ({_hours(role.settings.activation_max_duration)})"}
        for role in roles
    ]
    return _one(
        items,
        f"Activations of these privileged roles may last longer than {_hours(limit)}: "
        "a long activation is standing access by another name.",
    )


def _hours(duration: timedelta) -> str:
    return f"{duration.total_seconds() / 3600:g} hours"


# --- Assignments --------------------------------------------------------------------------


def permanent_active_assignments(*, now: datetime) -> list[Finding]:
    assignments = (
        ActiveAssignment.objects.filter(_still_open(now), ends_at__isnull=True, role__privileged=True)
        .select_related("role", "user", "group")
        .order_by("role__name", "starts_at")
    )
    return _one(
        [item("active_assignment", a, _assignment_label(a)) for a in assignments],
        "Standing administrator access: these principals hold privileged roles permanently "
        "instead of activating them when needed.",
    )


def permanent_eligible_critical(*, now: datetime) -> list[Finding]:
    assignments = (
        EligibleAssignment.objects.filter(
            _still_open(now), ends_at__isnull=True, role__tier=Role.Tier.CRITICAL
        )
        .select_related("role", "user", "group")
        .order_by("role__name", "starts_at")
    )
    return _one(
        [item("eligible_assignment", a, _assignment_label(a)) for a in assignments],
        "These eligibilities for critical roles never end, so no one has to renew them.",
    )


def too_many_global_admins(*, now: datetime) -> list[Finding]:
    """Entra: at least N Global Administrators *and* at least P % of all privileged role
    assignments (eligible and direct active; activations are counted as their eligibility)."""
    counted = Q(role__privileged=True) & _still_open(now)
    eligible = EligibleAssignment.objects.filter(counted)
    active = ActiveAssignment.objects.filter(counted, origin=ActiveAssignment.Origin.DIRECT)
    ga = Q(role__kind=Role.Kind.ENTRA, role__template_id=GLOBAL_ADMINISTRATOR)
    totals = [qs.aggregate(total=Count("pk"), ga=Count("pk", filter=ga)) for qs in (eligible, active)]
    total = sum(t["total"] for t in totals)
    ga_count = sum(t["ga"] for t in totals)
    if ga_count < settings.PIM_ALERT_GLOBAL_ADMIN_COUNT or not total:
        return []
    if ga_count * 100 < settings.PIM_ALERT_GLOBAL_ADMIN_PERCENT * total:
        return []
    related = ("role", "user", "group")
    holders = [
        *(
            item("eligible_assignment", a, _assignment_label(a))
            for a in eligible.filter(ga).select_related(*related)
        ),
        *(
            item("active_assignment", a, _assignment_label(a))
            for a in active.filter(ga).select_related(*related)
        ),
    ]
    return _one(
        holders,
        f"{ga_count} Global Administrator assignments, {ga_count * 100 // total} % of the "
        f"{total} privileged role assignments (thresholds: {settings.PIM_ALERT_GLOBAL_ADMIN_COUNT} "
        f"and {settings.PIM_ALERT_GLOBAL_ADMIN_PERCENT} %).",
    )


KEPT_ACTIONS = {"eligible_assignment.kept": EligibleAssignment, "active_assignment.kept": ActiveAssignment}


def lockout_holders_kept(*, now: datetime) -> list[Finding]:
    """Holders of a lockout-protected role kept past their end because each was the last one
    (roles.services.lockout_holders_keep), still without an end."""
    items = []
    for action, model in KEPT_ACTIONS.items():
        kept_ids = AuditEvent.objects.filter(action=action).values_list("target_id", flat=True)
        assignments = (
            model.objects.filter(_still_open(now), pk__in=list(kept_ids), ends_at__isnull=True)
            .select_related("role", "user", "group")
            .order_by("role__name", "starts_at")
        )
        kind = "eligible_assignment" if model is EligibleAssignment else "active_assignment"
        items += [item(kind, a, _assignment_label(a)) for a in assignments]
    return _one(
        items,
        "These were the last holders of a lockout-protected role when they reached their end, so they "
        "were kept without one (anti-lockout). Assign someone else, then end or re-date them.",
    )


class UsageSource(models.TextChoices):
    """What the unused-role alert found as a holder's last use of the role (the newest seen,
    too old to count), or that it found none."""

    PORTAL_ACTIVATION = "portal_activation", "activation in the portal"
    PORTAL_SIGN_IN = "portal_sign_in", "sign-in to the portal"
    ENTRA_SIGN_IN = "entra_sign_in", "sign-in seen by Entra ID"
    NONE = "none", "none"


_SIGN_IN_USAGE = {
    SignInSource.PORTAL: UsageSource.PORTAL_SIGN_IN,
    SignInSource.DIRECTORY: UsageSource.ENTRA_SIGN_IN,
    SignInSource.DIRECTORY_NON_INTERACTIVE: UsageSource.ENTRA_SIGN_IN,
}


def unused_eligibilities(*, now: datetime) -> list[Finding]:
    """Entra's "Administrators aren't using their privileged roles": people who have held a
    privileged role for at least N days and not used it in the last N. An eligibility is used
    by activating it; a standing (direct) active assignment, with nothing to activate, by
    signing in anywhere: to the portal, or to Entra (ENTRA_SIGN_IN_ACTIVITY). Two queries,
    whatever the number of holders; each item names what decided (the last use seen, or none)."""
    days = settings.PIM_ALERT_UNUSED_DAYS
    cutoff = now - timedelta(days=days)
    held = Q(user__isnull=False, role__privileged=True, starts_at__lte=cutoff) & _still_open(now)
    last_activation = (
        ActiveAssignment.objects.filter(
            user=OuterRef("user"), role=OuterRef("role"), origin=ActiveAssignment.Origin.ACTIVATION
        )
        .order_by("-starts_at")
        .values("starts_at")[:1]
    )
    eligible = (
        EligibleAssignment.objects.filter(held)
        .annotate(last_activation=Subquery(last_activation))
        .filter(Q(last_activation__isnull=True) | Q(last_activation__lt=cutoff))
        .select_related("role", "user")
        .order_by("role__name", "user__username")
    )
    not_signed_in = [
        Q(**{f"user__{name}__isnull": True}) | Q(**{f"user__{name}__lt": cutoff}) for name in SIGN_IN_FIELDS
    ]
    standing = (
        ActiveAssignment.objects.filter(held, *not_signed_in, origin=ActiveAssignment.Origin.DIRECT)
        .select_related("role", "user")
        .order_by("role__name", "user__username")
    )
    items = [
        _unused_item("eligible_assignment", a, a.last_activation, UsageSource.PORTAL_ACTIVATION)
        for a in eligible
    ]
    for assignment in standing:
        moment, source = cast(User, assignment.user).last_seen  # user__isnull=False above
        usage = _SIGN_IN_USAGE[SignInSource(source)] if source else UsageSource.NONE
        items.append(_unused_item("active_assignment", assignment, moment, usage))
    return _one(
        items,
        f"These people have not used their privileged role in the last {days} days: no activation "
        "of an eligible role, no sign-in (to the portal or Entra) of a standing active holder. "
        "A role nobody uses only widens the attack surface.",
    )


def _unused_item(kind: str, assignment, last_used: datetime | None, source: str) -> dict:
    source = source if last_used is not None else UsageSource.NONE
    verb = "activation" if kind == "eligible_assignment" else "sign-in"
    if last_used is None:
        seen = f"no {verb} ever seen"
    else:
        seen = f"last {verb} {last_used:%Y-%m-%d} ({UsageSource(source).label})"
    return {
        **item(kind, assignment, f"{_assignment_label(assignment)} — {seen}"),
        "source": str(source),
        "last_used_at": last_used.isoformat() if last_used else None,
    }


def frequent_activations(*, now: datetime) -> list[Finding]:
    """The same person activated the same privileged role at least N times within the renewal
    window (in the last PIM_ALERT_FREQUENT_LOOKBACK_DAYS): the maximum duration may be too
    short, or someone is keeping a role on by renewing it."""
    window = timedelta(hours=settings.PIM_ALERT_RENEWAL_WINDOW_HOURS)
    count = settings.PIM_ALERT_RENEWAL_COUNT
    starts = defaultdict(list)
    rows = (
        ActiveAssignment.objects.filter(
            origin=ActiveAssignment.Origin.ACTIVATION,
            role__privileged=True,
            user__isnull=False,
            starts_at__gte=now - timedelta(days=settings.PIM_ALERT_FREQUENT_LOOKBACK_DAYS),
            starts_at__lte=now,
        )
        .order_by("user_id", "role_id", "starts_at")
        .values_list("user_id", "role_id", "starts_at")
    )
    for user_id, role_id, started in rows:
        starts[(user_id, role_id)].append(started)
    flagged = {pair: most for pair, times in starts.items() if (most := _most_within(times, window)) >= count}
    if not flagged:
        return []
    users = User.objects.in_bulk({user_id for user_id, _ in flagged})
    roles = Role.objects.in_bulk({role_id for _, role_id in flagged})
    items = [
        {
            "type": "user_role",
            "id": f"{user_id}:{role_id}",
            "label": (
                f"{roles[role_id].name} — {users[user_id].label}: {most} activations within {_hours(window)}"
            ),
        }
        for (user_id, role_id), most in sorted(
            flagged.items(), key=lambda kv: (roles[kv[0][1]].name, kv[0][0])
        )
    ]
    return _one(items, f"Roles activated {count} or more times by the same person within {_hours(window)}.")


def _most_within(times: list[datetime], window: timedelta) -> int:
    """The most starts (sorted) that fall within one window (a sliding window)."""
    best, first = 0, 0
    for last, moment in enumerate(times):
        while moment - times[first] > window:
            first += 1
        best = max(best, last - first + 1)
    return best


def kind_register(name: str, kind: AlertKind) -> None:
    """Apps above alerts add alert kinds of their own in their AppConfig.ready() (integrations:
    paused webhook subscriptions); evaluated with the rest."""
    KINDS.setdefault(name, kind)


# Apps that see role assignments made outside the portal (the Entra sync) register here, in
# their AppConfig.ready(): each source returns the items of the alert below.
OUTSIDE_PORTAL_SOURCES: list[Callable[[], list[dict]]] = []


def outside_portal_source_register(source: Callable[[], list[dict]]) -> None:
    if source not in OUTSIDE_PORTAL_SOURCES:
        OUTSIDE_PORTAL_SOURCES.append(source)


def assigned_outside_portal(*, now: datetime) -> list[Finding]:
    items = [entry for source in OUTSIDE_PORTAL_SOURCES for entry in source()]
    return _one(items, "The Entra sync found privileged role assignments that the portal did not make.")


def roles_not_reviewed(*, now: datetime) -> list[Finding]:
    """Privileged roles with an assignment older than N days and no access review of the role
    that started in the last N days."""
    days = settings.PIM_ALERT_REVIEW_DAYS
    cutoff = now - timedelta(days=days)
    old = _still_open(now) & Q(starts_at__lte=cutoff)
    reviewed = ReviewInstance.objects.filter(
        definition__roles=OuterRef("pk"), starts_at__gte=cutoff, starts_at__lte=now
    )
    roles = (
        Role.objects.filter(privileged=True)
        .filter(
            Q(pk__in=EligibleAssignment.objects.filter(old).values("role_id"))
            | Q(
                pk__in=ActiveAssignment.objects.filter(old, origin=ActiveAssignment.Origin.DIRECT).values(
                    "role_id"
                )
            )
        )
        .filter(~Exists(reviewed))
        .order_by("name")
    )
    return _one(
        [_role_item(role) for role in roles],
        f"No access review of these privileged roles started in the last {days} days.",
    )


def stale_accounts(*, now: datetime) -> list[Finding]:
    """People in a privileged role (eligible or direct active, themselves or through a group)
    who have not signed in for N days (or never), not counting accounts younger than that.
    A sign-in is the portal's or, with ENTRA_SIGN_IN_ACTIVITY, one Entra saw; each item says
    which source its last sign-in came from."""
    days = settings.PIM_ALERT_STALE_SIGN_IN_DAYS
    cutoff = now - timedelta(days=days)
    held = Q(role__privileged=True) & _still_open(now)
    eligible = EligibleAssignment.objects.filter(held)
    active = ActiveAssignment.objects.filter(held, origin=ActiveAssignment.Origin.DIRECT)
    in_held_group = Q(directorygroup_id__in=eligible.values("group_id")) | Q(
        directorygroup_id__in=active.values("group_id")
    )
    users = (
        User.objects.filter(is_active=True, date_joined__lte=cutoff)
        .filter(
            *(Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__lt": cutoff}) for field in SIGN_IN_FIELDS)
        )
        .filter(
            Q(pk__in=eligible.values("user_id"))
            | Q(pk__in=active.values("user_id"))
            | Q(pk__in=DirectoryGroup.members.through.objects.filter(in_held_group).values("user_id"))
        )
        .order_by("username")
    )
    items = [
        item(
            "user",
            user,
            f"{user.label} — last sign-in {user.last_seen_label}",
        )
        for user in users
    ]
    return _one(items, f"These accounts hold privileged roles but have not signed in for {days} days.")


def directory_changes_not_effective(*, now: datetime) -> list[Finding]:
    """Grants, revokes and eligibility changes the directory (Entra) accepted but did not show
    as in force (or gone) within PIM_DIRECTORY_EFFECT_ALERT_MINUTES: still waiting, or given up
    on in the last UNCONFIRMED_DAYS days. A grant (or eligibility) that has ended since no longer
    matters; a revoke or removal not confirmed may have left access in the directory, so it
    stays until dismissed."""
    Op = DirectoryOperation
    overdue = now - timedelta(minutes=settings.PIM_DIRECTORY_EFFECT_ALERT_MINUTES)
    operations = (
        Op.objects.filter(
            Q(effect=Op.Effect.WAITING, completed_at__lte=overdue)
            | Q(effect=Op.Effect.UNCONFIRMED, completed_at__gte=now - timedelta(days=UNCONFIRMED_DAYS))
        )
        .select_related(
            "assignment__role",
            "assignment__user",
            "assignment__group",
            "eligible__role",
            "eligible__user",
            "eligible__group",
        )
        .order_by("completed_at", "pk")
    )
    removals = (Op.Operation.REVOKE, Op.Operation.ELIGIBLE_REMOVE)
    items = [
        item("directory_operation", op, _operation_label(op))
        for op in operations
        if op.operation in removals or op.target.is_current(now)
    ]
    return _one(
        items,
        "The directory accepted these changes but has not shown them in force within "
        f"{settings.PIM_DIRECTORY_EFFECT_ALERT_MINUTES} minutes: access there may differ from the portal's.",
    )


UNCONFIRMED_DAYS = 30


def _operation_label(op) -> str:
    state = "still waiting" if op.effect == DirectoryOperation.Effect.WAITING else "never confirmed"
    return (
        f"{op.get_operation_display()} of {_assignment_label(op.target)}: accepted "
        f"{op.completed_at:%Y-%m-%d %H:%M} UTC, {state}"
    )


def break_glass_sign_ins(*, now: datetime) -> list[Finding]:
    """Every sign-in of a break-glass (superuser) account is an alert of its own (SPEC 2.8)."""
    since = now - timedelta(days=settings.PIM_ALERT_BREAK_GLASS_DAYS)
    events = AuditEvent.objects.filter(
        action=BREAK_GLASS_ACTION, occurred_at__gte=since, occurred_at__lte=now
    )
    return [
        Finding(
            key=str(event.seq),
            items=[
                {
                    "type": "audit_event",
                    "id": str(event.seq),
                    "label": f"{event.actor_label} signed in at {event.occurred_at:%Y-%m-%d %H:%M} UTC"
                    + (f" from {event.ip}" if event.ip else ""),
                }
            ],
            reason=(
                "The break-glass account signed in: confirm it was an emergency, then rotate its password."
            ),
        )
        for event in events.only("seq", "actor_label", "occurred_at", "ip").order_by("seq")
    ] + _break_glass_requests(since=since, now=now)


def _break_glass_requests(*, since: datetime, now: datetime) -> list[Finding]:
    """Every request the break-glass account makes is audited (accounts.middleware); they raise
    one alert per account and day, listing what it did (a sign-in is an alert of its own)."""
    events = AuditEvent.objects.filter(
        action=BREAK_GLASS_REQUEST_ACTION, occurred_at__gte=since, occurred_at__lte=now
    ).only("seq", "actor_id", "actor_label", "occurred_at", "ip", "details")
    by_day: dict[tuple[str, str], list[AuditEvent]] = defaultdict(list)
    for event in events.order_by("seq"):
        by_day[(str(event.actor_id), f"{event.occurred_at:%Y-%m-%d}")].append(event)
    return [
        Finding(
            key=f"requests:{actor}:{day}",
            items=[
                {
                    "type": "audit_event",
                    "id": str(event.seq),
                    "label": f"{event.actor_label}: {event.details.get('method', '')} "
                    f"{event.details.get('path', '')} at {event.occurred_at:%H:%M} UTC"
                    + (f" from {event.ip}" if event.ip else ""),
                }
                for event in day_events[:_BREAK_GLASS_ITEMS]
            ],
            reason=f"The break-glass account made {len(day_events)} request(s) on {day}: "
            "confirm each was part of an emergency.",
        )
        for (actor, day), day_events in by_day.items()
    ]


_BREAK_GLASS_ITEMS = 50


# --- The catalog --------------------------------------------------------------------------

H, M, L = Severity.HIGH, Severity.MEDIUM, Severity.LOW

KINDS: dict[str, AlertKind] = {
    "roles_without_mfa": AlertKind(
        "Roles don't require multifactor authentication for activation",
        M,
        "Privileged roles whose activation does not ask for an MFA code.",
        "Require MFA on activation for each role.",
        roles_without_mfa,
        fix="Require MFA",
    ),
    "critical_roles_without_approval": AlertKind(
        "Critical roles don't require approval to activate",
        M,
        "Critical roles that anyone eligible activates on their own.",
        "Require approval (name approvers first if nobody could approve).",
        critical_roles_without_approval,
        fix="Require approval",
    ),
    "long_activation_duration": AlertKind(
        "Long activation durations on privileged roles",
        L,
        "Privileged roles whose activations may last longer than PIM_ALERT_MAX_ACTIVATION_HOURS.",
        "Shorten the maximum activation duration to the threshold.",
        long_activation_duration,
        fix="Shorten the duration",
    ),
    "permanent_active_assignments": AlertKind(
        "Permanent active assignments of privileged roles",
        H,
        "Standing administrator access: privileged roles held without activation or end.",
        "Convert each to an eligible assignment, activated when needed.",
        permanent_active_assignments,
        fix="Convert to eligible",
    ),
    "permanent_eligible_critical": AlertKind(
        "Permanent eligible assignments of critical roles",
        M,
        "Eligibilities for critical roles that never expire and so are never re-approved.",
        "Give each an end date on the role's page, or cover the role with an access review.",
        permanent_eligible_critical,
    ),
    "too_many_global_admins": AlertKind(
        "There are too many Global Administrators",
        L,
        "At least PIM_ALERT_GLOBAL_ADMIN_COUNT Global Administrator assignments, and at least "
        "PIM_ALERT_GLOBAL_ADMIN_PERCENT % of all privileged role assignments.",
        "Move people to less privileged roles that cover what they do.",
        too_many_global_admins,
    ),
    "lockout_holder_kept": AlertKind(
        "The last holder of a lockout-protected role was kept past its end",
        H,
        "Global Administrator or PIM Administrator would have had no holder: the last one's "
        "time-bound assignment was kept without an end (anti-lockout) instead of lapsing.",
        "Assign the role to someone else (or a second person), then give this assignment an end again.",
        lockout_holders_kept,
    ),
    "unused_eligibilities": AlertKind(
        "Administrators aren't using their privileged roles",
        L,
        "Holding a privileged role for PIM_ALERT_UNUSED_DAYS days and not using it in them: eligible "
        "with no activation, or actively assigned with no sign-in to the portal or to Entra.",
        "Remove the assignments that are not needed.",
        unused_eligibilities,
        fix="Remove the assignment",
    ),
    "frequent_activations": AlertKind(
        "Roles are being activated too frequently",
        M,
        "The same person activated the same privileged role PIM_ALERT_RENEWAL_COUNT times within "
        "PIM_ALERT_RENEWAL_WINDOW_HOURS hours.",
        "Check the maximum activation duration fits the work, and ask why the role is renewed.",
        frequent_activations,
    ),
    "assigned_outside_portal": AlertKind(
        "Roles are being assigned outside of the portal",
        H,
        "Privileged role assignments made in Entra directly, seen by the Entra sync.",
        "Remove them in Entra (or set ENTRA_REMOVE_DRIFT) and assign through the portal.",
        assigned_outside_portal,
    ),
    "roles_not_reviewed": AlertKind(
        "Privileged roles not covered by a recent access review",
        L,
        "Privileged roles with assignments and no access review started in PIM_ALERT_REVIEW_DAYS days.",
        "Create an access review of the role.",
        roles_not_reviewed,
    ),
    "stale_accounts": AlertKind(
        "Potential stale accounts in a privileged role",
        M,
        "Accounts in a privileged role that have not signed in for PIM_ALERT_STALE_SIGN_IN_DAYS days.",
        "Remove their privileged roles, or deactivate the accounts.",
        stale_accounts,
    ),
    "directory_changes_not_effective": AlertKind(
        "Changes not in force in the directory",
        H,
        "Grants or revokes that Entra accepted but did not show in force within "
        "PIM_DIRECTORY_EFFECT_ALERT_MINUTES minutes (proof of effect).",
        "Check the assignment in Entra (PIM, role assignments) and the Entra sync's drift findings; "
        "remove or re-assign there if it differs, then dismiss.",
        directory_changes_not_effective,
    ),
    "break_glass_sign_in": AlertKind(
        "The break-glass account was used",
        H,
        "Every sign-in of a superuser (break-glass) account in the last PIM_ALERT_BREAK_GLASS_DAYS days.",
        "Confirm it was an emergency, rotate the password and record why.",
        break_glass_sign_ins,
    ),
}
