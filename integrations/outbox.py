"""The audit event hook: outbox rows for webhooks and chat, in the event's own transaction."""

from collections.abc import Sequence

from audit.models import AuditEvent
from audit.registry import AppendedEvent

from . import chat, webhooks


def audit_events_written(events: Sequence[AppendedEvent | AuditEvent]) -> None:
    webhooks.deliveries_write(events)
    chat.messages_write(events)
