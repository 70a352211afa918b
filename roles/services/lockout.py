"""Anti-lockout at the end of a holder: the last holder of a lockout-protected role does not
lapse (SPEC 2.2; Entra does not remove the last Global Administrator's time-bound eligibility
at its expiry).

Edits cannot leave a protected role without a holder (assignments._ensure_lockout_safe), but a
time-bound holder reaches its end by itself. Before that happens (LOCKOUT_KEEP_AHEAD, longer
than the expiry job's period) the job keeps the last one: its end is removed, the audit event
<kind>_assignment.kept says why, and the high alert "lockout_holder_kept" asks an administrator
to assign someone else and then end it. Reads compare ends with the clock, so a job that runs
late finds the holder lapsed but not yet recorded as expired: it is kept all the same.
"""

from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import DirectoryGroup
from audit.services import audit_record

from ..models import ActiveAssignment, EligibleAssignment, Role, RoleSettings
from ..selectors import role_holders

# How far ahead the expiry job looks for the last holder's end (it runs every 5 minutes).
LOCKOUT_KEEP_AHEAD = timedelta(hours=1)


def lockout_holders_keep(*, now: datetime | None = None) -> int:
    """Keep the last holder of each lockout-protected role that would otherwise be left with
    none within LOCKOUT_KEEP_AHEAD; returns how many were kept."""
    now = now or timezone.now()
    kept = 0
    for role in Role.objects.filter(lockout_protected=True):
        if _held_at(role, now + LOCKOUT_KEEP_AHEAD):
            continue  # the usual case, read without a lock (checked again under it below)
        with transaction.atomic():
            # The role's settings first, as the assignment services take them (one lock order).
            RoleSettings.objects.select_for_update().get(role=role)
            kept += _keep_last_holder(role, now)
    return kept


def _keep_last_holder(role: Role, now: datetime) -> int:
    if _held_at(role, now + LOCKOUT_KEEP_AHEAD):
        return 0
    candidate = _latest_ending_holder(role, now)
    if candidate is None:
        return 0  # nobody to keep (the role has no holder at all)
    model = type(candidate)
    assignment = model.objects.select_for_update(of=("self",)).select_related("role").get(pk=candidate.pk)
    if assignment.ended_at is not None or assignment.end_reason or assignment.ends_at is None:
        return 0  # ended, expired or made permanent since it was read
    before = assignment.ends_at
    assignment.ends_at = None
    assignment.save(update_fields=["ends_at"])
    kind = "eligible" if model is EligibleAssignment else "active"
    audit_record(
        action=f"{kind}_assignment.kept",
        actor=None,
        target=assignment,
        role=role,
        scope=assignment.scope,
        details={
            "principal": assignment.principal_label,
            "before": {"ends_at": before},
            "after": {"ends_at": None},
            "because": (
                f"the last holder of {role}, a lockout-protected role, is kept past its end (anti-lockout); "
                "assign someone else, then end this one"
            ),
            "lapsed": before <= now,
        },
        at=now,
    )
    return 1


def _held_at(role: Role, moment: datetime) -> bool:
    """Whether an eligible or direct active assignment still holds the role at the moment
    (activations count through their eligibility)."""
    eligible, active = role_holders(role=role, at=moment)
    return eligible.exists() or active.filter(origin=ActiveAssignment.Origin.DIRECT).exists()


def _latest_ending_holder(role: Role, now: datetime) -> EligibleAssignment | ActiveAssignment | None:
    """The usable holder whose end comes last, among those not ended early and not recorded as
    expired (one that lapsed a moment ago, before the job ran, is still one)."""
    candidates: list[EligibleAssignment | ActiveAssignment] = []
    for model, extra in (
        (EligibleAssignment, Q()),
        (ActiveAssignment, Q(origin=ActiveAssignment.Origin.DIRECT)),
    ):
        usable = model.objects.filter(role=role).filter(_usable_principal())
        latest = (
            usable.filter(
                extra, ended_at__isnull=True, end_reason="", ends_at__isnull=False, starts_at__lte=now
            )
            .order_by("-ends_at")
            .first()
        )
        if latest is not None:
            candidates.append(latest)
    return max(candidates, key=lambda assignment: assignment.ends_at or now, default=None)


def _usable_principal() -> Q:
    return Q(user__is_active=True) | Q(
        group__in=DirectoryGroup.objects.filter(members__is_active=True).values("pk")
    )
