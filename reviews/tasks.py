from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def review_instances_start_due() -> None:
    services.review_instances_start_due()


@shared_task(ignore_result=True)
def review_instances_close_due() -> None:
    services.review_instances_close_due()


@shared_task(ignore_result=True)
def review_reminders_send_due() -> None:
    services.review_reminders_send_due()
