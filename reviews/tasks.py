from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def review_instances_start_due() -> int:
    return len(services.review_instances_start_due())


@shared_task(ignore_result=True)
def review_instances_close_due() -> int:
    return services.review_instances_close_due()


@shared_task(ignore_result=True)
def review_reminders_send_due() -> int:
    return services.review_reminders_send_due()
