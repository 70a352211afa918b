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

    def backlog(self) -> tuple[int, datetime | None]:
        """How many rows are pending, and when the oldest of them was written."""
        model = apps.get_model(self.model)
        row = model.objects.filter(status=self.pending_status).aggregate(
            depth=Count("pk"), oldest=Min("created_at")
        )
        return row["depth"], row["oldest"]


OUTBOXES: tuple[Outbox, ...] = (
    Outbox("email", "notifications.Email"),
    Outbox("directory", "roles.DirectoryOperation"),
)
