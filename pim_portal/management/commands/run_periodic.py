"""Run every periodic job once, for deployments that use cron instead of Celery beat.

The jobs are those of pim_portal/periodic.py, in its order. Each finds its work in the
database and claims rows, so this is safe to run at any interval, late, or at the same time as
a beat-driven worker (SPEC 3).
"""

from django.conf import settings
from django.core.management.base import BaseCommand
from django.utils.module_loading import import_string

from pim_portal.jobs import run_recorded
from pim_portal.periodic import PERIODIC_JOBS, jobs_table


class Command(BaseCommand):
    help = (
        "Run every periodic job once (expiry, timeouts, reminders, reviews, alerts, directory and "
        "email outboxes, audit checkpoint, and the Entra sync when it is on)."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--list", action="store_true", help="Print the jobs as a Markdown table (README's) and run none."
        )

    def handle(self, *args, list=False, **options):  # noqa: A002 - the option's name
        if list:
            self.stdout.write(jobs_table())
            return
        values = {name: getattr(settings, name) for name in dir(settings) if name.isupper()}
        for job in PERIODIC_JOBS:
            if job.enabled(values):
                task = import_string(job.task)
                # Recorded like a worker's run (/metrics, and /readyz's heartbeat).
                self.stdout.write(f"{job.counts}: {run_recorded(job.name, task)}")
