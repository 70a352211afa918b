"""Periodic bookkeeping for assignments that reached their end.

Access already ended at ends_at (reads compare with the clock); this job records it: the end
reason, one audit event each and, for direct active assignments, a directory revoke (through
roles.services.active_assignments_end, the one place an active assignment's end is written). Rows are
claimed (FOR UPDATE SKIP LOCKED, then a conditional update on end_reason) so concurrent or
repeated runs record each end once. Activations' own assignments are closed by
activations.jobs.activation_expire_due.

Before that, the last holder of a lockout-protected role is kept from lapsing
(roles.services.lockout_holders_keep): it never reaches the expiry.
"""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from .models import ActiveAssignment, EligibleAssignment
from .services import active_assignments_end, eligible_assignments_expire, lockout_holders_keep

BATCH = 1000


def assignment_expire_due(*, now: datetime | None = None, batch: int = BATCH) -> int:
    now = now or timezone.now()
    # First keep the last holder of a lockout-protected role from lapsing (anti-lockout).
    lockout_holders_keep(now=now)
    done = 0
    for model in (EligibleAssignment, ActiveAssignment):
        done += _expire(model, now, batch)
    return done


def _expire(model, now: datetime, batch: int) -> int:
    due = model.objects.filter(ended_at=None, end_reason="", ends_at__lte=now)
    if model is ActiveAssignment:
        due = due.exclude(origin=ActiveAssignment.Origin.ACTIVATION)
    done = 0
    while True:
        with transaction.atomic():
            ids = list(
                due.select_for_update(skip_locked=True)
                .order_by("ends_at")
                .values_list("pk", flat=True)[:batch]
            )
            if not ids:
                return done
            assignments = list(model.objects.filter(pk__in=ids).select_related("role", "user", "group"))
            if model is ActiveAssignment:
                active_assignments_end(
                    actor=None,
                    assignments=assignments,
                    reason=ActiveAssignment.EndReason.EXPIRED,
                    now=now,
                    audit_action="active_assignment.expired",
                )
            else:
                eligible_assignments_expire(assignments=assignments, now=now)
            done += len(assignments)
        if len(ids) < batch:
            return done
