"""The periodic jobs, declared once: Celery beat's schedule (settings.CELERY_BEAT_SCHEDULE),
`manage.py run_periodic` (for cron instead of beat) and README's job table all read this list.

Each job is a Celery task that finds its work in the database, claims rows and returns how many
it handled, so a missed, late or doubled tick does no harm (SPEC 3). This module imports no app:
tasks are named by their dotted path, so settings can read it at start-up.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from celery.schedules import crontab


@dataclass(frozen=True)
class PeriodicJob:
    name: str  # the beat entry's name
    task: str  # dotted path of the Celery task (run_periodic calls it in process)
    schedule: float | crontab  # seconds, or a crontab
    counts: str  # what the number the task returns means, as run_periodic prints it
    when: str = "always"  # "always", or the name of a boolean setting that turns it on
    minutes_setting: str = ""  # a setting (in minutes, at least 5) that overrides the schedule

    def enabled(self, values: Mapping[str, Any]) -> bool:
        return self.when == "always" or bool(values.get(self.when))

    def interval(self, values: Mapping[str, Any]) -> float | crontab:
        if self.minutes_setting and values.get(self.minutes_setting):
            return 60.0 * max(int(values[self.minutes_setting]), 5)
        return self.schedule


HEARTBEAT_SECONDS = 60.0

# In run_periodic's order: the revokes and emails that the first jobs queue are carried out by
# the drains of the same run; the checkpoint comes last so it signs what the others wrote.
PERIODIC_JOBS: tuple[PeriodicJob, ...] = (
    PeriodicJob(
        "activations-expire-due", "activations.tasks.activation_expire_due", 60.0, "activations expired"
    ),
    PeriodicJob("assignments-expire-due", "roles.tasks.assignment_expire_due", 300.0, "assignments expired"),
    PeriodicJob(
        "pending-changes-expire-due",
        "roles.tasks.pending_change_expire_due",
        300.0,
        "pending changes expired",
    ),
    PeriodicJob(
        "activations-timeout-due", "activations.tasks.activation_timeout_due", 60.0, "requests timed out"
    ),
    PeriodicJob(
        "activations-remind", "activations.tasks.reminders_send_due", crontab(minute="*/15"), "reminders sent"
    ),
    PeriodicJob(
        "reviews-start-due",
        "reviews.tasks.review_instances_start_due",
        crontab(minute="*/10"),
        "access reviews started",
    ),
    PeriodicJob(
        "reviews-close-due",
        "reviews.tasks.review_instances_close_due",
        crontab(minute="*/10"),
        "access reviews closed",
    ),
    PeriodicJob(
        "reviews-remind",
        "reviews.tasks.review_reminders_send_due",
        crontab(minute=5),
        "review reminders sent",
    ),
    PeriodicJob("alerts-evaluate", "alerts.tasks.alerts_evaluate", crontab(minute=20), "alerts raised"),
    PeriodicJob(
        "entra-sync",
        "entra.tasks.entra_sync",
        3600.0,
        "Entra sync runs",
        when="ENTRA_SYNC_ENABLED",
        minutes_setting="ENTRA_SYNC_INTERVAL_MINUTES",
    ),
    PeriodicJob(
        "directory-outbox-drain", "roles.tasks.directory_outbox_drain", 60.0, "directory operations done"
    ),
    PeriodicJob("email-outbox-drain", "notifications.tasks.email_outbox_drain", 120.0, "emails sent"),
    # Does nothing: its recorded run is the heartbeat /readyz checks (pim_portal.health).
    PeriodicJob("beat-heartbeat", "pim_portal.tasks.beat_heartbeat", HEARTBEAT_SECONDS, "heartbeats"),
    PeriodicJob(
        "audit-checkpoint",
        "audit.tasks.audit_checkpoint_write",
        crontab(minute="*/15"),
        "audit checkpoints written",
    ),
)


def beat_schedule(values: Mapping[str, Any]) -> dict:
    """CELERY_BEAT_SCHEDULE from the settings' values: every job that is on."""
    return {
        job.name: {"task": job.task, "schedule": job.interval(values)}
        for job in PERIODIC_JOBS
        if job.enabled(values)
    }


def describe(schedule: float | crontab) -> str:
    """The schedule as README's job table says it: "every 60 s" or "cron */15 * * * *"."""
    if isinstance(schedule, crontab):
        # repr: "<crontab: */15 * * * * (m/h/dM/MY/d)>"
        return "cron " + repr(schedule).split(": ", 1)[1].split(" (", 1)[0]
    return f"every {int(schedule)} s"


def jobs_table() -> str:
    """README's table of periodic jobs (a test keeps README equal to it)."""
    lines = ["| beat entry | task | schedule | run_periodic prints |", "| --- | --- | --- | --- |"]
    for job in PERIODIC_JOBS:
        when = "" if job.when == "always" else f" (only with `{job.when}`)"
        if job.minutes_setting:
            when += f"; `{job.minutes_setting}` sets the interval"
        lines.append(f"| `{job.name}` | `{job.task}` | {describe(job.schedule)}{when} | {job.counts} |")
    return "\n".join(lines)
