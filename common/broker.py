"""Publishing Celery tasks after commit without ever holding the web request.

Every task queued on commit has an outbox row behind it (an email, a directory operation)
that a periodic drain job also picks up, so a publish only makes the work start now rather
than at the next drain: it may fail and nothing is lost. Hence it is tried once (no publish
retries; the Redis socket timeouts, PIM_REDIS_TIMEOUT_SECONDS, bound the attempt), and after a
failure this process leaves the broker alone for PAUSE_AFTER_FAILURE: a hung broker costs
one request one timeout, not every request one each.
"""

import logging
import time
from typing import Any

logger = logging.getLogger(__name__)

PAUSE_AFTER_FAILURE = 30.0  # seconds

_paused_until = 0.0  # time.monotonic() before which this process does not try the broker


def task_publish(task: Any, *args: object, countdown: float | None = None) -> bool:  # celery is untyped
    """Queue task(*args) once (to run `countdown` seconds from now, if given); False if the
    broker did not take it (the outbox row stays pending and the drain job carries it out)."""
    global _paused_until
    # An eager task (tests, CELERY_TASK_ALWAYS_EAGER) runs here and never touches the broker.
    eager = task.app.conf.task_always_eager
    if not eager and time.monotonic() < _paused_until:
        logger.info("Broker paused after a failure: %s%r is left to the drain job", task.name, args)
        return False
    try:
        task.apply_async(args=args, retry=False, countdown=countdown)
    except Exception:  # broker down, hung or refusing: the drain job has it
        if not eager:
            _paused_until = time.monotonic() + PAUSE_AFTER_FAILURE
        logger.warning(
            "Could not queue %s%r; the drain job will carry it out", task.name, args, exc_info=True
        )
        return False
    return True


def broker_pause_clear() -> None:
    """Try the broker again at the next publish (tests, or after fixing the broker)."""
    global _paused_until
    _paused_until = 0.0
