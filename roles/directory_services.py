"""Carrying out directory operations from the outbox (after commit, never inside the
transaction that changed the assignment)."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from common.broker import task_publish
from common.db import uuid_array

from .directory import (
    DirectoryError,
    PermanentDirectoryError,
    TransientDirectoryError,
    directory_operation_running,
    get_backend,
    in_directory,
)
from .models import ActiveAssignment, DirectoryOperation, EligibleAssignment
from .signals import directory_effect_overdue

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
MAX_BACKOFF = timedelta(minutes=30)
MAX_ATTEMPTS = 20
# Proof of effect: the first look at the directory after it accepted a change, then twice as
# long between looks, at most a minute, until settings.PIM_DIRECTORY_EFFECT_GIVE_UP_MINUTES.
FIRST_CHECK = timedelta(seconds=5)
MAX_CHECK_INTERVAL = timedelta(minutes=1)
CHECK_LEASE = timedelta(minutes=2)
Effect = DirectoryOperation.Effect
# Operations after which the directory should show nothing of the target.
REMOVALS = (DirectoryOperation.Operation.REVOKE, DirectoryOperation.Operation.ELIGIBLE_REMOVE)
TARGET_RELATED = (
    "assignment__role",
    "assignment__user",
    "assignment__group",
    "eligible__role",
    "eligible__user",
    "eligible__group",
)
_applying_directory_changes: ContextVar[bool] = ContextVar("applying_directory_changes", default=False)


def directory_operation_enqueue(*, assignment: ActiveAssignment, operation: str, now: datetime) -> None:
    """Record the intent in the caller's transaction; a task carries it out after commit."""
    op = DirectoryOperation.objects.create(
        assignment=assignment, operation=operation, created_at=now, next_attempt_at=now
    )
    transaction.on_commit(lambda: _enqueue_run(op.pk))


def eligible_write_back(*, eligible: EligibleAssignment, operation: str, now: datetime) -> None:
    """Write an eligibility change of a directory role back to the directory (the outbox, as
    for grants); nothing for the portal's own roles, or inside directory_changes_applying()
    (the change came from the directory: writing it back would echo it)."""
    if _written_back(eligible) and not _applying_directory_changes.get():
        op = DirectoryOperation.objects.create(
            eligible=eligible, operation=operation, created_at=now, next_attempt_at=now
        )
        transaction.on_commit(lambda: _enqueue_run(op.pk))


def eligibles_write_back_many(*, eligibles, operation: str, now: datetime) -> None:
    if _applying_directory_changes.get():
        return
    ops = DirectoryOperation.objects.bulk_create(
        [
            DirectoryOperation(eligible=e, operation=operation, created_at=now, next_attempt_at=now)
            for e in eligibles
            if _written_back(e)
        ]
    )
    _enqueue_after_commit([op.pk for op in ops if op.pk])


def _written_back(eligible: EligibleAssignment) -> bool:
    return in_directory(eligible)


@contextmanager
def directory_changes_applying() -> Iterator[None]:
    """Changes made inside come from the directory (the Entra import): not written back."""
    token = _applying_directory_changes.set(True)
    try:
        yield
    finally:
        _applying_directory_changes.reset(token)


def directory_operations_enqueue_many(*, assignments, operation: str, now: datetime) -> None:
    directory_operations_enqueue_ids(assignment_ids=[a.pk for a in assignments], operation=operation, now=now)


def directory_operations_enqueue_ids(*, assignment_ids: list, operation: str, now: datetime) -> None:
    """Record the intents for many assignments (by id) in the caller's transaction; after
    commit one broker message carries them all (_enqueue_run_many)."""
    if not assignment_ids:
        return
    if connection.vendor == "postgresql":
        _enqueue_after_commit(_operations_insert_select(assignment_ids, operation, now))
        return
    ops = DirectoryOperation.objects.bulk_create(
        [
            DirectoryOperation(assignment_id=pk, operation=operation, created_at=now, next_attempt_at=now)
            for pk in assignment_ids
        ]
    )
    _enqueue_after_commit([op.pk for op in ops if op.pk])


def _operations_insert_select(assignment_ids: list, operation: str, now: datetime) -> list[int]:
    """PostgreSQL: the operations in one INSERT ... SELECT over the ids as an array (no SQL
    compiled per row); the new ids in the order of assignment_ids. Every other column takes
    the model's default (the table has no database defaults)."""
    meta = DirectoryOperation._meta
    given = {"assignment": None, "operation": operation, "created_at": now, "next_attempt_at": now}
    columns: list[str] = ["assignment_id"]
    values: list[str] = ["ids.id"]
    params: list[Any] = []
    for field in meta.concrete_fields:
        if field.primary_key or field.name == "assignment":
            continue
        value = given[field.name] if field.name in given else field.get_default()
        columns.append(str(field.column))
        values.append("%s")
        params.append(field.get_db_prep_save(value, connection))
    quote = connection.ops.quote_name
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(quote(c) for c in columns)}) "  # noqa: S608 - model names
        f"SELECT {', '.join(values)} "
        "FROM unnest(%s::uuid[]) WITH ORDINALITY AS ids(id, n) ORDER BY ids.n RETURNING id"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, uuid_array(assignment_ids)])
        return [row[0] for row in cursor.fetchall()]


def _enqueue_after_commit(ids: list[int]) -> None:
    if ids:
        transaction.on_commit(lambda: _enqueue_run_many(ids))


def _enqueue_run(operation_id: int) -> None:
    from .tasks import directory_operation_run

    task_publish(directory_operation_run, operation_id)  # if not queued, directory_outbox_drain has it


def _enqueue_run_many(operation_ids: list[int]) -> None:
    """One broker message for a batch (an expiry sweep ends thousands at once): a publish per
    row costs a round trip to the broker each."""
    from .tasks import directory_operations_run

    if len(operation_ids) == 1:
        _enqueue_run(operation_ids[0])
    else:
        task_publish(directory_operations_run, operation_ids)


def directory_operations_run(*, operation_ids: list[int], now: datetime | None = None) -> int:
    """Carry out a batch queued by one message, one operation after the other (each claimed
    on its own, as directory_operation_run does); how many this call completed."""
    return sum(directory_operation_run(operation_id=pk, now=now) for pk in operation_ids)


def directory_operation_run(*, operation_id: int, now: datetime | None = None) -> bool:
    """Claim one due operation (compare-and-swap on its lease), call the back end, record the
    outcome. True if this call completed it."""
    now = now or timezone.now()
    claimed = DirectoryOperation.objects.filter(
        pk=operation_id, status=DirectoryOperation.Status.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + LEASE, attempts=F("attempts") + 1)
    if claimed != 1:
        return False
    op = DirectoryOperation.objects.select_related(*TARGET_RELATED).get(pk=operation_id)
    Operation = DirectoryOperation.Operation
    if op.operation == Operation.GRANT and op.assignment and not op.assignment.is_current(now):
        if op.assignment.starts_at <= now:  # ended before it could be provisioned: nothing to do
            _finish(op, DirectoryOperation.Status.DONE, {"skipped": "ended before provisioning"}, "success")
            return True
    if _earlier_operation_pending(op):
        # Remove only after the grant has run (or been skipped), or the grant could land last;
        # an eligibility's changes go in the order they were made.
        # Waiting is not an attempt: give back the one the claim counted, so a long wait does
        # not inflate the back-off or use up MAX_ATTEMPTS before the revoke has even been tried.
        DirectoryOperation.objects.filter(pk=op.pk).update(
            next_attempt_at=now + timedelta(seconds=30), attempts=F("attempts") - 1
        )
        return False
    backend = get_backend()
    try:
        with directory_operation_running(op):
            if op.eligible is not None:
                result = backend.eligibility(op.eligible, op.operation) or {}
            elif op.operation == Operation.GRANT:
                result = backend.grant(op.assignment) or {}
            else:
                result = backend.revoke(op.assignment) or {}
    except TransientDirectoryError as error:
        _retry_later(op, error, now)
        return False
    except PermanentDirectoryError as error:
        _finish(op, DirectoryOperation.Status.FAILED, {"error": str(error)[:500]}, AuditEvent.Outcome.FAILURE)
        return False
    _finish(
        op,
        DirectoryOperation.Status.DONE,
        result,
        AuditEvent.Outcome.SUCCESS,
        confirm=backend.confirms_effect,
    )
    return True


def _earlier_operation_pending(op: DirectoryOperation) -> bool:
    earlier = DirectoryOperation.objects.filter(status=DirectoryOperation.Status.PENDING, pk__lt=op.pk)
    if op.eligible_id is not None:
        return earlier.filter(eligible_id=op.eligible_id).exists()
    if op.operation == DirectoryOperation.Operation.REVOKE:
        return earlier.filter(
            assignment_id=op.assignment_id, operation=DirectoryOperation.Operation.GRANT
        ).exists()
    return False


def _retry_later(op: DirectoryOperation, error: TransientDirectoryError, now: datetime) -> None:
    backoff = min(timedelta(seconds=10 * 2 ** (op.attempts - 1)), MAX_BACKOFF)
    if error.retry_after is not None:
        backoff = max(backoff, timedelta(seconds=error.retry_after))
    if op.attempts >= MAX_ATTEMPTS:
        _finish(op, DirectoryOperation.Status.FAILED, {"error": str(error)[:500]}, AuditEvent.Outcome.FAILURE)
        return
    DirectoryOperation.objects.filter(pk=op.pk).update(
        next_attempt_at=now + backoff, last_error=str(error)[:500]
    )


def _finish(
    op: DirectoryOperation, status: str, result: dict, outcome: str, *, confirm: bool = False
) -> None:
    """Record the outcome; a change the directory accepted and can confirm waits for proof."""
    now = timezone.now()
    confirm = confirm and status == DirectoryOperation.Status.DONE and "skipped" not in result
    effect = {"effect": Effect.WAITING, "next_check_at": now + FIRST_CHECK} if confirm else {}
    with transaction.atomic():
        DirectoryOperation.objects.filter(pk=op.pk).update(
            status=status, completed_at=now, result=result, last_error=result.get("error", ""), **effect
        )
        if confirm:
            transaction.on_commit(lambda: _enqueue_check(op.pk, FIRST_CHECK))
        target = op.target
        audit_record(
            action=f"directory.{op.operation}_{'confirmed' if status == 'done' else 'failed'}",
            target=target,
            role=target.role,
            scope=target.scope,
            details={"operation_id": op.pk, "attempts": op.attempts, "result": result},
            outcome=outcome,
            at=now,
        )


def directory_outbox_drain(*, now: datetime | None = None, limit: int = 500) -> int:
    """Run whatever is pending and due (catch-up after the broker, worker or directory was down)."""
    now = now or timezone.now()
    due = DirectoryOperation.objects.filter(
        status=DirectoryOperation.Status.PENDING, next_attempt_at__lte=now
    ).order_by("next_attempt_at")
    return sum(
        directory_operation_run(operation_id=pk, now=now) for pk in due.values_list("pk", flat=True)[:limit]
    )


# --- Proof of effect ----------------------------------------------------------------------------


def _enqueue_check(operation_id: int, delay: timedelta) -> None:
    from .tasks import directory_effect_check

    # If not queued (or lost with a worker), directory_effects_check_due has it.
    task_publish(directory_effect_check, operation_id, countdown=delay.total_seconds())


def directory_effect_check(*, operation_id: int, now: datetime | None = None) -> bool:
    """Ask the directory whether an accepted change is in force: a grant's assignment or an
    eligibility as the portal has it, or a revoke's or removal's gone. Once the operation's
    next check is due (compare-and-swap on its lease). Records "effective at T" when it is;
    otherwise the next check, or, past the give-up time, "not confirmed". A change to
    something that starts later is first checked when it starts.
    True if this call confirmed it."""
    now = now or timezone.now()
    claimed = DirectoryOperation.objects.filter(
        pk=operation_id, effect=Effect.WAITING, next_check_at__lte=now
    ).update(next_check_at=now + CHECK_LEASE, effect_checks=F("effect_checks") + 1)
    if claimed != 1:
        return False
    op = DirectoryOperation.objects.select_related(*TARGET_RELATED).get(pk=operation_id)
    target = op.target
    present = op.operation not in REMOVALS  # what the directory should show: the target, or nothing
    if present and target.starts_at > now:
        # Not in force anywhere before its start: look then (not a check, nor late).
        DirectoryOperation.objects.filter(pk=op.pk, effect=Effect.WAITING).update(
            next_check_at=target.starts_at + FIRST_CHECK, effect_checks=F("effect_checks") - 1
        )
        _enqueue_check(op.pk, target.starts_at + FIRST_CHECK - now)
        return False
    if present and not target.is_current(now):
        what = "eligibility" if op.eligible_id else "assignment"
        _effect_record(op, Effect.UNCONFIRMED, now, note=f"The {what} ended before the directory showed it.")
        return False
    try:
        in_force = get_backend().in_force(target)
    except DirectoryError as error:  # unreachable, throttled or refusing: no answer this time
        logger.info("Proof of effect of %s: %s", op, error)
        in_force = None
    # Measured from acceptance, or from the start of what starts later.
    accepted_at = op.completed_at or now
    if present:
        accepted_at = max(accepted_at, target.starts_at)
    overdue = now >= accepted_at + timedelta(minutes=settings.PIM_DIRECTORY_EFFECT_ALERT_MINUTES)
    if in_force is not None and in_force == present:
        _effect_record(op, Effect.EFFECTIVE, now, overdue=overdue)
        return True
    if now >= accepted_at + timedelta(minutes=settings.PIM_DIRECTORY_EFFECT_GIVE_UP_MINUTES):
        _effect_record(op, Effect.UNCONFIRMED, now, note="The directory never showed the change.")
        return False
    delay = min(FIRST_CHECK * 2**op.effect_checks, MAX_CHECK_INTERVAL)
    with transaction.atomic():
        DirectoryOperation.objects.filter(pk=op.pk, effect=Effect.WAITING).update(next_check_at=now + delay)
        if overdue:
            directory_effect_overdue.send(sender=DirectoryOperation, operation=op, now=now)
    _enqueue_check(op.pk, delay)
    return False


def _effect_record(
    op: DirectoryOperation, effect: str, now: datetime, *, note: str = "", overdue: bool = True
) -> None:
    """Record the outcome of the proof (audited); overdue: the alert on it may change."""
    effective = effect == Effect.EFFECTIVE
    accepted_at = op.completed_at or now
    with transaction.atomic():
        DirectoryOperation.objects.filter(pk=op.pk).update(
            effect=effect, effective_at=now if effective else None, next_check_at=None
        )
        details = {
            "operation_id": op.pk,
            "checks": op.effect_checks,
            "accepted_at": accepted_at.isoformat(),
            "seconds_after_acceptance": round((now - accepted_at).total_seconds()),
        }
        if effective:
            details["effective_at"] = now.isoformat()
        if note:
            details["note"] = note
        target = op.target
        audit_record(
            action=f"directory.{op.operation}_{'effective' if effective else 'unconfirmed'}",
            target=target,
            role=target.role,
            scope=target.scope,
            details=details,
            outcome=AuditEvent.Outcome.SUCCESS if effective else AuditEvent.Outcome.FAILURE,
            at=now,
        )
        if overdue:
            directory_effect_overdue.send(sender=DirectoryOperation, operation=op, now=now)


def directory_effects_check_due(*, now: datetime | None = None, limit: int = 500) -> int:
    """Check every waiting operation that is due (catch-up when a queued check was lost)."""
    now = now or timezone.now()
    due = DirectoryOperation.objects.filter(effect=Effect.WAITING, next_check_at__lte=now).order_by(
        "next_check_at"
    )
    return sum(
        directory_effect_check(operation_id=pk, now=now) for pk in due.values_list("pk", flat=True)[:limit]
    )
