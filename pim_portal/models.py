"""What the operators watch: the last run of each periodic job (pim_portal/periodic.py)."""

from django.db import models


class PeriodicJobStatus(models.Model):
    """The last run of one periodic job, written by whichever process ran it (a Celery worker
    for beat's ticks, or `manage.py run_periodic`). Read by /readyz (the beat heartbeat) and
    /metrics (durations, last success). Operational state only: no audit event, no business
    rule reads it."""

    name = models.CharField(max_length=100, unique=True)
    last_started_at = models.DateTimeField(null=True, blank=True)
    last_finished_at = models.DateTimeField(null=True, blank=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_duration_seconds = models.FloatField(null=True, blank=True)
    runs = models.PositiveBigIntegerField(default=0)
    failures = models.PositiveBigIntegerField(default=0)

    class Meta:
        verbose_name_plural = "periodic job statuses"

    def __str__(self) -> str:
        return self.name
