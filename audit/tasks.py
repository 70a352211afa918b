from celery import shared_task

from . import checkpoints


@shared_task(ignore_result=True)
def audit_checkpoint_write() -> None:
    checkpoints.audit_checkpoint_write()


@shared_task(ignore_result=True)
def alerts_evaluate() -> None:
    from .alerts import alerts_evaluate as evaluate

    evaluate()
