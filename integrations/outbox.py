"""The audit event hook: outbox rows for webhooks and chat, in the event's own transaction."""

from audit.models import AuditEvent

from . import chat, webhooks


def audit_events_written(events: list[AuditEvent]) -> None:
    webhooks.deliveries_write(events)
    chat.messages_write(events)
