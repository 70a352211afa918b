from celery import shared_task

from . import jobs


@shared_task(ignore_result=True)
def activation_expire_due() -> None:
    jobs.activation_expire_due()


@shared_task(ignore_result=True)
def activation_timeout_due() -> None:
    jobs.activation_timeout_due()


@shared_task(ignore_result=True)
def reminders_send_due() -> None:
    jobs.reminders_send_due()
