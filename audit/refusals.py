"""Refusals worth a record: someone tried what they may not do (approve their own request,
decide a request they are not, or no longer, an approver of, an administrative action without
the permission for it). One helper for every app: audit_refusal.

The event (outcome "denied") is written in its own transaction, so it survives the rollback of
the refused change. A caller already inside a transaction of its own (the Django admin wraps
its forms in one) cannot commit anything apart from it: the event is then kept aside and
written once that transaction is over, on commit, or by the request-id middleware at the end of
the web request, whatever the outcome (a Celery task or command whose transaction rolls back
loses it; none of them refuses people).

Rate-limited per actor so that a script cannot flood the log: at most
PIM_AUDIT_REFUSALS_PER_MINUTE events per actor and clock minute, then one
audit.refusals_suppressed event that says so, then nothing more until the next minute. The
counter lives in the "refusals" cache (Redis when REDIS_URL is set, so every web process counts
together); if the cache is down, every refusal is recorded.
"""

import logging
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.core.cache import caches
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.utils import timezone

from .models import AuditEvent
from .services import AuditEntry, audit_record_many

logger = logging.getLogger(__name__)

REFUSAL_CACHE = "refusals"
SUPPRESSED_ACTION = "audit.refusals_suppressed"
PERMISSION_DENIED_ACTION = "admin.permission_denied"
_WINDOW = timedelta(minutes=1)

# Refusals waiting for the caller's transaction to end (see the module docstring).
_deferred: ContextVar[tuple[tuple[AuditEntry, datetime], ...]] = ContextVar(
    "pim_deferred_refusals", default=()
)


def audit_refusal(
    *,
    action: str,
    actor,
    target=None,
    role=None,
    scope: str = "",
    details: dict | None = None,
    at: datetime | None = None,
) -> AuditEvent | None:
    """Record a refusal (outcome denied) in its own transaction, within the actor's rate limit.
    Returns the event written now, or None (suppressed, or kept until the transaction ends)."""
    at = at or timezone.now()
    entry = _admitted(
        AuditEntry(action, actor, target, role, scope, details or {}, AuditEvent.Outcome.DENIED), at
    )
    if entry is None:
        return None
    if _in_application_transaction():
        _defer(entry, at)
        return None
    return _write([(entry, at)])[0]


def audit_permission_denied(
    *,
    actor,
    attempted: str,
    message: str,
    permission: str = "",
    target=None,
    role=None,
    details: dict | None = None,
) -> PermissionDenied:
    """Record an administrative action refused for want of a permission (admin.permission_denied,
    with the action attempted) and return the PermissionDenied to raise."""
    audit_refusal(
        action=PERMISSION_DENIED_ACTION,
        actor=actor,
        target=target,
        role=role,
        details={
            "attempted": attempted,
            **({"permission": permission} if permission else {}),
            "message": message,
            **(details or {}),
        },
    )
    return PermissionDenied(message)


def audit_refusals_flush() -> int:
    """Write the refusals kept aside while a transaction was open (the middleware calls this
    at the end of every web request, after any transaction of the view is over)."""
    pending = _deferred.get()
    if not pending or _in_application_transaction():
        return 0
    _deferred.set(())
    _write(list(pending))
    return len(pending)


def audit_refusals_discard() -> None:
    """Forget the refusals kept aside (tests: a test's transaction never commits)."""
    _deferred.set(())


def _admitted(entry: AuditEntry, at: datetime) -> AuditEntry | None:
    """The entry itself while the actor is within the limit, the one suppressed-event entry
    just past it, None after that (until the next minute)."""
    actor_id = getattr(entry.actor, "pk", None)
    if actor_id is None:
        return entry
    window_start = datetime.fromtimestamp(int(at.timestamp()) // 60 * 60, tz=UTC)
    key = f"audit-refusals:{actor_id}:{window_start:%Y%m%d%H%M}"
    try:
        counter = caches[REFUSAL_CACHE]
        counter.add(key, 0, timeout=int(2 * _WINDOW.total_seconds()))
        count = counter.incr(key)
    except Exception:  # noqa: BLE001 - a refusal is recorded whatever the counter's health
        logger.warning("Refusal rate limit unavailable; recording %s", entry.action, exc_info=True)
        return entry
    limit = settings.PIM_AUDIT_REFUSALS_PER_MINUTE
    if count <= limit:
        return entry
    if count > limit + 1:
        return None
    return AuditEntry(
        action=SUPPRESSED_ACTION,
        actor=entry.actor,
        outcome=AuditEvent.Outcome.DENIED,
        details={
            "limit": limit,
            "window_start": window_start,
            "window_end": window_start + _WINDOW,
            "first_suppressed": entry.action,
            "note": f"More than {limit} refusals in a minute: the rest of this minute's are not recorded.",
        },
    )


def _in_application_transaction() -> bool:
    """Whether an atomic block of the application is open (as for Django's own durable=True
    check, the blocks a TestCase opens around each test do not count)."""
    connection = transaction.get_connection()
    return any(not getattr(block, "_from_testcase", False) for block in connection.atomic_blocks)


def _defer(entry: AuditEntry, at: datetime) -> None:
    _deferred.set((*_deferred.get(), (entry, at)))
    transaction.on_commit(audit_refusals_flush)


def _write(entries: list[tuple[AuditEntry, datetime]]) -> list[AuditEvent]:
    with transaction.atomic(durable=True):
        return [audit_record_many(entries=[entry], at=at)[0] for entry, at in entries]
