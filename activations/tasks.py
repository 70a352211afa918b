from celery import shared_task

from . import jobs


@shared_task(ignore_result=True)
def activation_expire_due() -> int:
    return jobs.activation_expire_due()


@shared_task(ignore_result=True)
def activation_timeout_due() -> int:
    return jobs.activation_timeout_due()


@shared_task(ignore_result=True)
def reminders_send_due() -> int:
    return jobs.reminders_send_due()
