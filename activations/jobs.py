"""Periodic jobs (Celery beat, or `manage.py run_periodic`). Each finds its work in the
database, claims rows (FOR UPDATE SKIP LOCKED, then a conditional update on the status) so
concurrent or repeated runs never process a row twice, and catches up after downtime. None
is needed for access to end on time: reads compare ends_at with the clock."""

from datetime import datetime, timedelta
from typing import cast

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import AuditEntry, audit_record_many
from notifications.services import email_queue
from roles.models import ActiveAssignment, EligibleAssignment
from roles.notification_matrix import assignment_ending_notify
from roles.services import active_assignments_end

from .models import ActivationRequest
from .services import request_approvers

Status = ActivationRequest.Status
BATCH = 1000
ENDING_SOON = timedelta(minutes=15)
ASSIGNMENT_NOTICES = (14, 1)  # days before the end (SPEC 2.2); 0 = it has ended


def activation_expire_due(*, now: datetime | None = None, batch: int = BATCH) -> int:
    """Close granted activations whose end has passed: status Expired, a directory revoke,
    one audit event each."""
    now = now or timezone.now()
    done = 0
    while True:
        with transaction.atomic():
            # The lock order: the active assignments, then the requests behind them (one a
            # deactivation or a removal is ending right now is skipped: that closes it).
            assignment_ids = list(
                ActiveAssignment.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(activation_request__status=Status.GRANTED, activation_request__ends_at__lte=now)
                .order_by("activation_request__ends_at")
                .values_list("pk", flat=True)[:batch]
            )
            if not assignment_ids:
                return done
            ids = list(
                ActivationRequest.objects.select_for_update(skip_locked=True)
                .filter(active_assignment__in=assignment_ids, status=Status.GRANTED)
                .values_list("pk", flat=True)
            )
            claimed = ActivationRequest.objects.filter(pk__in=ids, status=Status.GRANTED)
            claimed.update(status=Status.EXPIRED, closed_at=now)
            requests = list(
                ActivationRequest.objects.filter(
                    pk__in=ids, status=Status.EXPIRED, closed_at=now
                ).select_related("role", "requester", "active_assignment")
            )
            # The requests' events record the ends (audit_action None).
            active_assignments_end(
                actor=None,
                # granted ones: activations_request_granted_has_assignment
                assignments=[cast(ActiveAssignment, request.active_assignment) for request in requests],
                reason=ActiveAssignment.EndReason.EXPIRED,
                now=now,
            )
            audit_record_many(
                entries=[
                    AuditEntry(
                        action="activation.expired",
                        target=request,
                        role=request.role,
                        scope=request.scope,
                        details={"requester": request.requester.label, "ends_at": request.ends_at},
                    )
                    for request in requests
                ],
                at=now,
            )
            done += len(requests)
        if len(assignment_ids) < batch:
            return done


def activation_timeout_due(*, now: datetime | None = None, batch: int = BATCH) -> int:
    """Requests nobody decided by their deadline become Timed out; requester and approvers hear."""
    now = now or timezone.now()
    done = 0
    while True:
        with transaction.atomic():
            ids = list(
                ActivationRequest.objects.select_for_update(skip_locked=True)
                .filter(status=Status.PENDING_APPROVAL, decide_by__lte=now)
                .order_by("decide_by")
                .values_list("pk", flat=True)[:batch]
            )
            if not ids:
                return done
            ActivationRequest.objects.filter(pk__in=ids, status=Status.PENDING_APPROVAL).update(
                status=Status.TIMED_OUT, closed_at=now
            )
            requests = list(
                ActivationRequest.objects.filter(
                    pk__in=ids, status=Status.TIMED_OUT, closed_at=now
                ).select_related("role", "requester")
            )
            entries = []
            for request in requests:
                prefix = "activation" if request.kind == ActivationRequest.Kind.ACTIVATE else request.kind
                entries.append(
                    AuditEntry(
                        action=f"{prefix}.timed_out",
                        target=request,
                        role=request.role,
                        scope=request.scope,
                        details={"requester": request.requester.label},
                    )
                )
                email_queue(
                    recipients=[request.requester, *request_approvers(request)],
                    template="request-closed",
                    context={"request": request},
                    now=now,
                )
            audit_record_many(entries=entries, at=now)
            done += len(requests)
        if len(ids) < batch:
            return done


def activation_ending_reminders(*, now: datetime | None = None) -> int:
    """Tell requesters their activation ends within 15 minutes (once per activation)."""
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            ActivationRequest.objects.select_for_update(skip_locked=True)
            .filter(
                status=Status.GRANTED,
                ends_at__gt=now,
                ends_at__lte=now + ENDING_SOON,
                ending_reminder_sent_at=None,
            )
            .values_list("pk", flat=True)[:BATCH]
        )
        ActivationRequest.objects.filter(pk__in=ids, ending_reminder_sent_at=None).update(
            ending_reminder_sent_at=now
        )
        requests = ActivationRequest.objects.filter(pk__in=ids).select_related("role", "requester")
        for request in requests:
            email_queue(
                recipients=[request.requester],
                template="activation-ending",
                context={"request": request},
                now=now,
            )
    return len(ids)


def assignment_expiry_notices(*, now: datetime | None = None) -> int:
    """Tell assignees (the user, or a group's members) and administrators 14 days and 1 day
    before an assignment ends, and when it has ended, as the role's notification matrix says."""
    now = now or timezone.now()
    sent = 0
    for model in (EligibleAssignment, ActiveAssignment):
        # Nearest first: an assignment already within a day of its end gets the 1-day notice
        # only, which then counts as sent for the 14-day one too.
        for days in (0, *sorted(ASSIGNMENT_NOTICES)):
            sent += _notice(model, days, now)
    return sent


def _notice(model, days: int, now: datetime) -> int:
    window = Q(ends_at__lte=now + timedelta(days=days))
    window &= Q(ends_at__gt=now) if days else Q(ends_at__gt=now - timedelta(days=7))  # 0: ended lately
    not_yet = Q(expiry_notice_days__isnull=True) | Q(expiry_notice_days__gt=days)
    due = model.objects.filter(window, not_yet, ended_at=None)
    if model is ActiveAssignment:
        due = due.exclude(origin=ActiveAssignment.Origin.ACTIVATION)  # those have their own reminder
    kind = "eligible" if model is EligibleAssignment else "active"
    with transaction.atomic():
        ids = list(due.select_for_update(skip_locked=True).values_list("pk", flat=True)[:BATCH])
        model.objects.filter(not_yet, pk__in=ids).update(expiry_notice_days=days)
        for assignment in model.objects.filter(pk__in=ids).select_related("role__settings", "user", "group"):
            assignment_ending_notify(
                role_settings=assignment.role.settings, assignment=assignment, kind=kind, days=days, now=now
            )
    return len(ids)


def reminders_send_due(*, now: datetime | None = None) -> int:
    now = now or timezone.now()
    return activation_ending_reminders(now=now) + assignment_expiry_notices(now=now)
