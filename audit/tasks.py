from celery import shared_task

from . import checkpoints


@shared_task(ignore_result=True)
def audit_checkpoint_write() -> int:
    return int(checkpoints.audit_checkpoint_write() is not None)
