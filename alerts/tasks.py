from celery import shared_task

from .services import alerts_evaluate as evaluate


@shared_task(ignore_result=True)
def alerts_evaluate() -> int:
    return len(evaluate().raised)
