"""Recording the runs of the periodic jobs (PeriodicJobStatus), from Celery and run_periodic.

A Celery worker records every task that is one of PERIODIC_JOBS (task_prerun/task_postrun
signals, connected in PortalConfig.ready); `manage.py run_periodic` records the jobs it runs
in process through `job_run`. A failure to record is logged and never fails the job.
"""

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

from django.db import DatabaseError
from django.db.models import F
from django.utils import timezone

from .models import PeriodicJobStatus
from .periodic import PERIODIC_JOBS

logger = logging.getLogger(__name__)
T = TypeVar("T")

JOB_BY_TASK = {job.task: job.name for job in PERIODIC_JOBS}
_started: dict[str, tuple[datetime, float]] = {}  # Celery task id -> (start, monotonic start)


def job_run_record(*, name: str, started_at: datetime, duration: float, succeeded: bool) -> None:
    """Count one finished run of the job `name` (one upsert, safe from many workers at once)."""
    finished_at = timezone.now()
    changes: dict[str, Any] = {
        "last_started_at": started_at,
        "last_finished_at": finished_at,
        "last_duration_seconds": duration,
        "runs": F("runs") + 1,
    }
    if succeeded:
        changes["last_success_at"] = finished_at
    else:
        changes["last_failure_at"] = finished_at
        changes["failures"] = F("failures") + 1
    try:
        PeriodicJobStatus.objects.get_or_create(name=name)
        PeriodicJobStatus.objects.filter(name=name).update(**changes)
    except DatabaseError:
        logger.exception("Could not record the run of the periodic job %s", name)


@contextmanager
def job_run(name: str) -> Iterator[None]:
    """Record the run of the block as a run of the job `name` (run_periodic)."""
    started_at, start = timezone.now(), time.monotonic()
    succeeded = False
    try:
        yield
        succeeded = True
    finally:
        job_run_record(
            name=name, started_at=started_at, duration=time.monotonic() - start, succeeded=succeeded
        )


def run_recorded(name: str, function: Callable[[], T]) -> T:
    with job_run(name):
        return function()


def on_task_prerun(sender: Any = None, task_id: str | None = None, **kwargs: Any) -> None:
    if task_id and getattr(sender, "name", None) in JOB_BY_TASK:
        _started[task_id] = (timezone.now(), time.monotonic())


def on_task_postrun(
    sender: Any = None, task_id: str | None = None, state: str | None = None, **kw: Any
) -> None:
    name = JOB_BY_TASK.get(getattr(sender, "name", ""))
    began = _started.pop(task_id or "", None)
    if name is None or began is None:
        return
    started_at, start = began
    job_run_record(
        name=name, started_at=started_at, duration=time.monotonic() - start, succeeded=state == "SUCCESS"
    )
