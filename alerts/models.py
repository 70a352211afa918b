"""Security alerts: the conditions the periodic evaluation found (SPEC 2.6)."""

from typing import ClassVar

from django.conf import settings
from django.db import models
from django.urls import reverse

from .rules import KINDS, Severity


class Alert(models.Model):
    """A security alert (SPEC 2.6): one condition found by the periodic evaluation
    (alerts.services), with the items it affects and why.

    At most one open-or-dismissed row per kind and key; once resolved, the row stays as history
    and the condition coming back raises a new row. Status changes go through alerts.services,
    along TRANSITIONS.
    """

    Severity = Severity  # an alert has its kind's severity (alerts.rules)

    class Status(models.TextChoices):
        OPEN = "open"
        DISMISSED = "dismissed"
        RESOLVED = "resolved"

    LIVE = (Status.OPEN, Status.DISMISSED)
    TRANSITIONS: ClassVar[dict[str, set[str]]] = {
        Status.OPEN: {Status.DISMISSED, Status.RESOLVED},
        Status.DISMISSED: {Status.OPEN, Status.RESOLVED},
    }
    SEVERITY_ORDER = {Severity.HIGH: 0, Severity.MEDIUM: 1, Severity.LOW: 2}

    kind = models.CharField(max_length=48)
    # What the alert is about within its kind ("" for a tenant-wide condition, an event's seq
    # for each break-glass sign-in).
    key = models.CharField(max_length=64, blank=True, default="")
    severity = models.CharField(max_length=8, choices=Severity.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    # [{"type": ..., "id": ..., "label": ...}], as found by the last evaluation.
    items = models.JSONField(default=list, blank=True)
    reason = models.TextField(blank=True)
    first_raised_at = models.DateTimeField()
    last_evaluated_at = models.DateTimeField()
    dismissed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    dismissed_at = models.DateTimeField(null=True, blank=True)
    dismiss_reason = models.TextField(blank=True)
    # The items when it was dismissed: a new affected item raises the alert again.
    dismissed_items = models.JSONField(default=list, blank=True)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # When the security admins were emailed about this (high severity only, once per raise).
    notified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-first_raised_at"]
        # The constraint and index keep the names they had when the table was audit's.
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "key"],
                condition=~models.Q(status="resolved"),
                name="audit_alert_one_live_per_key",
            ),
        ]
        indexes = [
            # the alerts list and the evaluation read only the live ones
            models.Index(
                fields=["severity"], condition=~models.Q(status="resolved"), name="audit_alert_live_idx"
            ),
        ]
        permissions = [
            ("manage_alert", "Dismiss alerts and apply their fixes"),
            ("view_dashboard", "See the dashboard"),
        ]

    def __str__(self) -> str:
        return f"{self.kind}{f' {self.key}' if self.key else ''} ({self.status})"

    def get_absolute_url(self) -> str:
        return reverse("alerts:alert_detail", args=[self.pk])

    @property
    def label(self) -> str:
        return f"alert {self.title}" + (f" ({self.key})" if self.key else "")

    @property
    def title(self) -> str:
        definition = KINDS.get(self.kind)
        return definition.title if definition else self.kind

    def can_become(self, status: str) -> bool:
        return status in self.TRANSITIONS.get(self.status, set())


class RuleEvaluation(models.Model):
    """When each alert rule was last evaluated (written by alerts.services.alerts_evaluate in
    its transaction). No row at all: the rules were never evaluated, and the pages say so
    rather than claiming there is nothing to worry about."""

    kind = models.CharField(max_length=48, primary_key=True)
    evaluated_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.kind} evaluated {self.evaluated_at:%Y-%m-%d %H:%M}"
