"""The outboxes (rows written in a transaction, carried out after commit by a worker), listed
once: /readyz checks how long their oldest pending row has waited and /metrics reports their
depth and age. A new outbox is one line here (its model needs `status` with a "pending"
value and `created_at`)."""

from dataclasses import dataclass
from datetime import datetime

from django.apps import apps
from django.db.models import Count, Min


@dataclass(frozen=True)
class Outbox:
    name: str  # as /readyz and the metrics' "outbox" label name it
    model: str  # "app_label.ModelName"
    pending_status: str = "pending"
    # Rows that wait on purpose (a paused webhook subscription's) are not a backlog.
    waiting: tuple[tuple[str, str], ...] = ()

    def backlog(self) -> tuple[int, datetime | None]:
        """How many rows are pending, and when the oldest of them was written."""
        model = apps.get_model(self.model)
        pending = model.objects.filter(status=self.pending_status)
        for field, value in self.waiting:
            pending = pending.exclude(**{field: value})
        row = pending.aggregate(depth=Count("pk"), oldest=Min("created_at"))
        return row["depth"], row["oldest"]


OUTBOXES: tuple[Outbox, ...] = (
    Outbox("email", "notifications.Email"),
    Outbox("directory", "roles.DirectoryOperation"),
    Outbox("webhook", "integrations.WebhookDelivery", waiting=(("subscription__status", "paused"),)),
    Outbox("chat", "integrations.ChatMessage"),
)
