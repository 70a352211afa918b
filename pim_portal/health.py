"""Liveness and readiness (/healthz, /readyz): what each checks, with no secret in the answer.

/healthz only says that the process answers. /readyz checks what the portal needs to do its
work: the database answers and has every migration applied, the broker answers, beat's
heartbeat is recent, and no outbox has a row waiting too long. Each check answers
{"ok": bool, ...} with numbers and fixed words only: never an exception's text (a URL with a
password could be in it), never a host name.
"""

import logging
import os
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from .models import PeriodicJobStatus
from .outboxes import OUTBOXES

logger = logging.getLogger(__name__)
HEARTBEAT_JOB = "beat-heartbeat"


@dataclass
class CheckResult:
    ok: bool
    details: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, **self.details}


_migrated = False  # once every migration is applied, this process stops asking


def check_database() -> CheckResult:
    global _migrated
    try:
        connection.ensure_connection()
        if not _migrated:
            executor = MigrationExecutor(connection)
            plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
            if plan:
                return CheckResult(False, {"error": "migrations not applied", "unapplied": len(plan)})
            _migrated = True
    except DatabaseError as error:
        logger.warning("readiness: the database did not answer (%s)", type(error).__name__)
        return CheckResult(False, {"error": "unreachable"})
    return CheckResult(True)


def check_broker() -> CheckResult:
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, **settings.REDIS_SOCKET_OPTIONS)
        try:
            client.ping()
        except redis.RedisError as error:
            logger.warning("readiness: the broker did not answer (%s)", type(error).__name__)
            return CheckResult(False, {"error": "unreachable"})
        finally:
            client.close()
        return CheckResult(True)
    # The file-system transport of the embedded defaults: its queue folder must be writable.
    folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in", "")
    if not (folder and os.path.isdir(folder) and os.access(folder, os.W_OK)):
        return CheckResult(False, {"error": "queue folder not writable"})
    return CheckResult(True)


def _age(then: datetime | None, now: datetime) -> float | None:
    return None if then is None else round(max((now - then).total_seconds(), 0.0), 1)


def check_beat(now: datetime) -> CheckResult:
    limit = settings.PIM_READY_BEAT_MAX_AGE_SECONDS
    if limit <= 0:
        return CheckResult(True, {"checked": False})
    last = (
        PeriodicJobStatus.objects.filter(name=HEARTBEAT_JOB).values_list("last_success_at", flat=True).first()
    )
    age = _age(last, now)
    if age is None:
        return CheckResult(False, {"error": "no heartbeat yet", "max_age_seconds": limit})
    if age > limit:
        return CheckResult(
            False, {"error": "heartbeat too old", "age_seconds": age, "max_age_seconds": limit}
        )
    return CheckResult(True, {"age_seconds": age})


def check_outboxes(now: datetime) -> dict[str, CheckResult]:
    limit = settings.PIM_READY_OUTBOX_MAX_AGE_SECONDS
    results = {}
    for outbox in OUTBOXES:
        _depth, oldest = outbox.backlog()
        age = _age(oldest, now)
        if age is not None and age > limit:
            results[f"outbox:{outbox.name}"] = CheckResult(
                False,
                {"error": "oldest pending row too old", "oldest_age_seconds": age, "max_age_seconds": limit},
            )
        else:
            results[f"outbox:{outbox.name}"] = CheckResult(True, {"oldest_age_seconds": age})
    return results


def readiness() -> tuple[bool, dict[str, Any]]:
    """Every check, and whether all passed. The checks after the database need it: with the
    database down they are reported as not run."""
    now = timezone.now()
    checks: dict[str, CheckResult] = {"database": check_database(), "broker": check_broker()}
    if checks["database"].ok:
        try:
            checks["beat"] = check_beat(now)
            checks.update(check_outboxes(now))
        except DatabaseError as error:
            logger.warning("readiness: a database query failed (%s)", type(error).__name__)
            checks["database"] = CheckResult(False, {"error": "query failed"})
    failing = [name for name, result in checks.items() if not result.ok]
    body = {
        "status": "ready" if not failing else "unready",
        "failing": failing,
        "checks": {name: result.as_json() for name, result in checks.items()},
    }
    return not failing, body
