from celery import shared_task

from . import services


@shared_task(ignore_result=True)
def email_send(email_id: int) -> None:
    services.email_send(email_id=email_id)


@shared_task(ignore_result=True)
def email_send_many(email_ids: list[int]) -> int:
    return services.email_send_many(email_ids=email_ids)


@shared_task(ignore_result=True)
def email_outbox_drain() -> int:
    return services.email_outbox_drain()
