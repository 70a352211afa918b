from celery import shared_task

from . import chat, digest, webhooks


@shared_task(ignore_result=True)
def webhook_deliver(subscription_id: str) -> int:
    return webhooks.webhook_deliver(subscription_id=subscription_id)


@shared_task(ignore_result=True)
def webhook_outbox_drain() -> int:
    return webhooks.webhook_outbox_drain()


@shared_task(ignore_result=True)
def chat_outbox_drain() -> int:
    chat.chat_ending_soon()  # rows only; the drain sends them
    return chat.chat_outbox_drain()


@shared_task(ignore_result=True)
def weekly_digest_send() -> int:
    return digest.weekly_digest_send()
