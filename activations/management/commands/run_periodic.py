"""Run every periodic job once, for deployments that use cron instead of Celery beat.

Each job finds its work in the database and claims rows, so this is safe to run at any
interval, late, or at the same time as a beat-driven worker (SPEC 3).
"""

from django.conf import settings
from django.core.management.base import BaseCommand

from activations import jobs
from audit.alerts import alerts_evaluate
from audit.checkpoints import audit_checkpoint_write
from notifications.services import email_outbox_drain
from reviews import services as reviews
from roles.directory_services import directory_outbox_drain
from roles.jobs import assignment_expire_due


def review_instances_start_due() -> int:
    return len(reviews.review_instances_start_due())


# (what the count means, the job); in this order so that the revokes and emails the first
# jobs queue are carried out by the drains of the same run.
JOBS = (
    ("activations expired", jobs.activation_expire_due),
    ("assignments expired", assignment_expire_due),
    ("requests timed out", jobs.activation_timeout_due),
    ("reminders sent", jobs.reminders_send_due),
    ("access reviews started", review_instances_start_due),
    ("access reviews closed", reviews.review_instances_close_due),
    ("review reminders sent", reviews.review_reminders_send_due),
    ("alerts raised", lambda: len(alerts_evaluate().raised)),
    ("directory operations done", directory_outbox_drain),
    ("emails sent", email_outbox_drain),
    # Last, so it signs the events the jobs above wrote; at most one per 14 minutes.
    ("audit checkpoints written", lambda: int(audit_checkpoint_write() is not None)),
)


class Command(BaseCommand):
    help = (
        "Run every periodic job once (expiry, timeouts, reminders, alerts, directory and email "
        "outboxes, audit checkpoint)."
    )

    def handle(self, *args, **options):
        for label, job in JOBS:
            self.stdout.write(f"{label}: {job()}")
        if settings.ENTRA_SYNC_ENABLED:
            from entra.services import entra_sync_run

            run = entra_sync_run(trigger="command")
            self.stdout.write(f"Entra sync: {run.status}")
