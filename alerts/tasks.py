from celery import shared_task

from .services import alerts_evaluate as evaluate
from .services import alerts_evaluate_if_never


@shared_task(ignore_result=True)
def alerts_evaluate() -> int:
    return len(evaluate().raised)


@shared_task(ignore_result=True)
def alerts_evaluate_first() -> None:
    """Queued after `migrate` (alerts.receivers): evaluates only if nothing ever did."""
    alerts_evaluate_if_never()
