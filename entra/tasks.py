import logging

from celery import shared_task
from django.conf import settings

from . import services

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def entra_sync() -> int:
    """The periodic import (beat entry "entra-sync", present only when the sync is on): 1 when
    it ran, 0 when it is off or another run is in progress."""
    if not settings.ENTRA_SYNC_ENABLED:
        return 0
    try:
        services.entra_sync_run(trigger="schedule")
    except services.SyncAlreadyRunning:
        logger.info("Entra sync skipped: another run is in progress.")
        return 0
    return 1
