"""Periodic jobs (Celery beat, or `manage.py run_periodic`). Each finds its work in the
database, claims rows (FOR UPDATE SKIP LOCKED, then a conditional update on the status) so
concurrent or repeated runs never process a row twice, and catches up after downtime. None
is needed for access to end on time: reads compare ends_at with the clock."""

import uuid
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import User
from audit.services import AuditEntry, audit_record_many, audit_record_prepared
from common.db import in_parallel, uuid_array
from notifications.services import email_queue
from roles.models import ActiveAssignment, EligibleAssignment, Role
from roles.notification_matrix import assignment_ending_notify
from roles.selectors import column_converters, from_db_column
from roles.services import active_assignments_expired_record

from .models import ActivationRequest
from .services import request_approvers

Status = ActivationRequest.Status
BATCH = 1000
ENDING_SOON = timedelta(minutes=15)
ASSIGNMENT_NOTICES = (14, 1)  # days before the end (SPEC 2.2); 0 = it has ended


def activation_expire_due(
    *, now: datetime | None = None, batch: int = BATCH, workers: int | None = None
) -> int:
    """Close granted activations whose end has passed: status Expired, the assignment's end
    reason, a directory revoke, one audit event each. Set-based, one transaction per batch:
    one claim locks the due requests with their assignments (SKIP LOCKED), one UPDATE ...
    RETURNING closes the requests, one UPDATE marks the assignments, the revokes and the audit
    events are inserted in bulk (the chain computed in one pass under the head's lock), and
    the revokes reach the broker as one message after commit.

    A backlog (the first batch full: after downtime, or a wave of activations ending at once)
    is shared by ``workers`` threads on their own connections (PIM_EXPIRY_SWEEP_WORKERS;
    common.db.in_parallel), each claiming whole batches: the chain head is the only thing they
    take turns at, for the last moments of each batch."""
    now = now or timezone.now()
    workers = settings.PIM_EXPIRY_SWEEP_WORKERS if workers is None else workers
    done, full = _expire_batch(now, batch)
    if not full:
        return done

    def backlog() -> int:
        total = 0
        while True:
            count, full = _expire_batch(now, batch)
            total += count
            if not full:
                return total

    return done + in_parallel(backlog, workers=workers)


def _expire_batch(now: datetime, batch: int) -> tuple[int, bool]:
    """One batch in its own transaction: how many requests it closed, and whether it found
    a full batch due (there may be more)."""
    with transaction.atomic():
        # The claim locks each request with its assignment and never waits (SKIP LOCKED), so
        # it cannot deadlock with a deactivation or a removal (which lock the assignment,
        # then the request): a pair either of which one holds is skipped; that one closes it.
        request_ids = _requests_claim(now, batch)
        if not request_ids:
            return 0, False
        closed = _requests_expire(request_ids, now)
        active_assignments_expired_record(assignment_ids=[row.assignment_id for row in closed], now=now)
        audit_record_prepared(events=_expired_events(closed), at=now)
    return len(closed), len(request_ids) == batch


class _Closed(NamedTuple):
    id: uuid.UUID
    kind: str
    scope: str
    ends_at: datetime
    assignment_id: uuid.UUID
    role_id: uuid.UUID
    role_name: str
    # the requester's label (User.label_of)
    username: str
    display_name: str
    first_name: str
    last_name: str


def _requests_claim(now: datetime, batch: int) -> list[Any]:
    """Lock the first ``batch`` due granted requests and their active assignments, skipping
    any pair of which either row is locked elsewhere; their ids (as the database gives them:
    _requests_expire takes them back). Hand-written: the ORM locks related rows only through
    select_related, with a model instance built per row."""
    request, assignment = ActivationRequest._meta.db_table, ActiveAssignment._meta.db_table
    features = connection.features
    lock = (
        " FOR UPDATE OF a, r SKIP LOCKED"
        if features.has_select_for_update_skip_locked and features.has_select_for_update_of
        else ""
    )
    sql = (
        f"SELECT r.id FROM {assignment} a JOIN {request} r ON r.active_assignment_id = a.id "  # noqa: S608 - table names
        f"WHERE r.status = %s AND r.ends_at <= %s ORDER BY r.ends_at LIMIT %s{lock}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [Status.GRANTED.value, connection.ops.adapt_datetimefield_value(now), batch])
        return [row[0] for row in cursor.fetchall()]


def _requests_expire(request_ids: list[Any], now: datetime) -> list[_Closed]:
    """Close the claimed (locked) requests as Expired in one UPDATE ... RETURNING, which also
    reads what their audit events name (the role's name, the requester's label columns); the
    rows closed, by end then id."""
    request, role, user = ActivationRequest._meta.db_table, Role._meta.db_table, User._meta.db_table
    columns = ("id", "kind", "scope", "ends_at", "active_assignment_id", "role_id")
    names = ("username", "display_name", "first_name", "last_name")
    if connection.vendor == "postgresql":
        # one array parameter, not a thousand; the names by a join
        returning = [*(f"r.{c}" for c in columns), "ro.name", *(f"u.{n}" for n in names)]
        sql = (
            f"UPDATE {request} r SET status = %s, closed_at = %s FROM {role} ro, {user} u "  # noqa: S608 - table names
            "WHERE r.id = ANY(%s::uuid[]) AND r.status = %s AND ro.id = r.role_id AND u.id = r.requester_id "
            f"RETURNING {', '.join(returning)}"
        )
        ids = [uuid_array(request_ids)]
    else:  # SQLite's RETURNING names the updated table only: the names by subqueries
        returning = [
            *columns,
            f"(SELECT name FROM {role} WHERE id = {request}.role_id)",  # noqa: S608 - table names
            *(f"(SELECT {n} FROM {user} WHERE id = {request}.requester_id)" for n in names),  # noqa: S608
        ]
        sql = (
            f"UPDATE {request} SET status = %s, closed_at = %s "  # noqa: S608 - table names, placeholders
            f"WHERE id IN ({', '.join(['%s'] * len(request_ids))}) AND status = %s "
            f"RETURNING {', '.join(returning)}"
        )
        ids = request_ids
    params = [Status.EXPIRED.value, connection.ops.adapt_datetimefield_value(now), *ids, Status.GRANTED.value]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    # a foreign key's value converts as the key it points at
    meta = ActivationRequest._meta
    fields = [
        getattr(meta.get_field(name), "target_field", meta.get_field(name))
        for name in ("id", "kind", "scope", "ends_at", "active_assignment", "role")
    ]
    if any(column_converters(each) for each in fields):  # SQLite: text for times and ids
        width = len(fields)
        rows = [
            (*(from_db_column(f, value) for f, value in zip(fields, row[:width], strict=True)), *row[width:])
            for row in rows
        ]
    closed = [_Closed(*row) for row in rows]
    closed.sort(key=lambda row: (row.ends_at, str(row.id)))
    return closed


def _expired_events(closed: list[_Closed]) -> list[dict]:
    """The activation.expired event of each closed request, as audit_record_many would write
    it for AuditEntry(target=request, role=request.role, scope=request.scope, details=...)."""
    kinds = {value: str(label).lower() for value, label in ActivationRequest.Kind.choices}
    encode = DjangoJSONEncoder().default
    target_type = f"{ActivationRequest._meta.app_label}.{ActivationRequest._meta.model_name}"
    events = []
    for row in closed:
        requester = User.label_of(row.username, row.display_name, row.first_name, row.last_name)
        events.append(
            {
                "action": "activation.expired",
                "target_type": target_type,
                "target_id": str(row.id),
                # ActivationRequest.label
                "target_label": f"{kinds[row.kind]} request {row.role_name} by {requester}",
                "role_id": row.role_id,
                "role_label": row.role_name,
                "scope": row.scope,
                "details": {"requester": requester, "ends_at": encode(row.ends_at)},
            }
        )
    return events


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
