"""Carrying out directory operations from the outbox (after commit, never inside the
transaction that changed the assignment)."""

import logging
from datetime import datetime, timedelta

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from audit.models import AuditEvent
from audit.services import audit_record
from common.broker import task_publish

from .directory import PermanentDirectoryError, TransientDirectoryError, get_backend
from .models import ActiveAssignment, DirectoryOperation

logger = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
MAX_BACKOFF = timedelta(minutes=30)
MAX_ATTEMPTS = 20


def directory_operation_enqueue(*, assignment: ActiveAssignment, operation: str, now: datetime) -> None:
    """Record the intent in the caller's transaction; a task carries it out after commit."""
    op = DirectoryOperation.objects.create(
        assignment=assignment, operation=operation, created_at=now, next_attempt_at=now
    )
    transaction.on_commit(lambda: _enqueue_run(op.pk))


def directory_operations_enqueue_many(*, assignments, operation: str, now: datetime) -> None:
    directory_operations_enqueue_ids(assignment_ids=[a.pk for a in assignments], operation=operation, now=now)


def directory_operations_enqueue_ids(*, assignment_ids: list, operation: str, now: datetime) -> None:
    """Record the intents for many assignments (by id) in the caller's transaction; after
    commit one broker message carries them all (_enqueue_run_many)."""
    ops = DirectoryOperation.objects.bulk_create(
        [
            DirectoryOperation(assignment_id=pk, operation=operation, created_at=now, next_attempt_at=now)
            for pk in assignment_ids
        ]
    )
    ids = [op.pk for op in ops if op.pk]
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
    op = DirectoryOperation.objects.select_related(
        "assignment__role", "assignment__user", "assignment__group"
    ).get(pk=operation_id)
    if op.operation == DirectoryOperation.Operation.GRANT and not op.assignment.is_current(now):
        if op.assignment.starts_at <= now:  # ended before it could be provisioned: nothing to do
            _finish(op, DirectoryOperation.Status.DONE, {"skipped": "ended before provisioning"}, "success")
            return True
    if op.operation == DirectoryOperation.Operation.REVOKE and _earlier_grant_pending(op):
        # Remove only after the grant has run (or been skipped), or the grant could land last.
        # Waiting is not an attempt: give back the one the claim counted, so a long wait does
        # not inflate the back-off or use up MAX_ATTEMPTS before the revoke has even been tried.
        DirectoryOperation.objects.filter(pk=op.pk).update(
            next_attempt_at=now + timedelta(seconds=30), attempts=F("attempts") - 1
        )
        return False
    backend = get_backend()
    call = backend.grant if op.operation == DirectoryOperation.Operation.GRANT else backend.revoke
    try:
        result = call(op.assignment) or {}
    except TransientDirectoryError as error:
        _retry_later(op, error, now)
        return False
    except PermanentDirectoryError as error:
        _finish(op, DirectoryOperation.Status.FAILED, {"error": str(error)[:500]}, AuditEvent.Outcome.FAILURE)
        return False
    _finish(op, DirectoryOperation.Status.DONE, result, AuditEvent.Outcome.SUCCESS)
    return True


def _earlier_grant_pending(op: DirectoryOperation) -> bool:
    return DirectoryOperation.objects.filter(
        assignment_id=op.assignment_id,
        operation=DirectoryOperation.Operation.GRANT,
        status=DirectoryOperation.Status.PENDING,
        pk__lt=op.pk,
    ).exists()


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


def _finish(op: DirectoryOperation, status: str, result: dict, outcome: str) -> None:
    now = timezone.now()
    with transaction.atomic():
        DirectoryOperation.objects.filter(pk=op.pk).update(
            status=status, completed_at=now, result=result, last_error=result.get("error", "")
        )
        assignment = op.assignment
        audit_record(
            action=f"directory.{op.operation}_{'confirmed' if status == 'done' else 'failed'}",
            target=assignment,
            role=assignment.role,
            scope=assignment.scope,
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
