"""Outboxes for the world outside: signed webhooks (a SIEM, automation) and chat messages
(Slack, Microsoft Teams). Each row is written in the transaction of the audit event that
caused it (audit.registry's event hook) and sent after commit, so an outage of the broker or
the receiver loses nothing and a rolled-back change sends nothing."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q


class WebhookSubscription(models.Model):
    """A receiver of the audit events it chose, as signed CloudEvents, in seq order."""

    class Status(models.TextChoices):
        ACTIVE = "active"
        PAUSED = "paused"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    url = models.URLField(max_length=1000)
    # Audit actions ("activation.granted"), namespaces ("activation.*") or "*" (audit.event_types).
    event_types = models.JSONField(default=list)
    # The HMAC-SHA256 key. Kept (it must sign every delivery) but never shown again after it is
    # set, never logged, never in an audit event.
    secret = models.CharField(max_length=256)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.ACTIVE)
    consecutive_failures = models.PositiveIntegerField(default=0)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_reason = models.CharField(max_length=500, blank=True)
    # One sender at a time (a lease, claimed with a conditional update) keeps deliveries in seq
    # order; after a failure nothing is sent before next_attempt_at (exponential back-off).
    lease_until = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["name"]
        permissions = [("manage_webhooks", "Manage webhook subscriptions")]

    def __str__(self) -> str:
        return self.name

    @property
    def label(self) -> str:
        return f"webhook {self.name}"


class WebhookDelivery(models.Model):
    """One audit event for one subscription: the delivery log."""

    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    # The audit event by its seq (no foreign key: the audit tables stay free of references, so
    # their append-only triggers, not a constraint, are what refuses a TRUNCATE).
    seq = models.BigIntegerField()
    action = models.CharField(max_length=100)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    replay = models.BooleanField(default=False)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-seq", "-pk"]
        indexes = [
            # The sender's next delivery per subscription (integrations.webhooks.webhook_deliver).
            models.Index(
                fields=["subscription", "seq"],
                condition=Q(status="pending"),
                name="integrations_delivery_due_idx",
            ),
            # The delivery log page, newest first.
            models.Index(fields=["subscription", "-seq"], name="integrations_delivery_log_idx"),
        ]
        constraints = [
            # A replay may send an event again, but one pending copy per subscription at a time.
            models.UniqueConstraint(
                fields=["subscription", "seq"],
                condition=Q(status="pending"),
                name="integrations_webhookdelivery_one_pending",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.seq} to {self.subscription} ({self.status})"


class ChatMessage(models.Model):
    """One Slack or Teams call about an activation request: a post to the channel, a DM to an
    approver or the requester, or an update of an earlier post (decided, canceled, timed out)."""

    class Channel(models.TextChoices):
        SLACK = "slack"
        TEAMS = "teams"

    class Kind(models.TextChoices):
        POST = "post"  # the approval request, to the channel or an approver's DM
        UPDATE = "update"  # an earlier post, rewritten with the outcome
        DM = "dm"  # a direct message to the requester (granted, denied, ending soon)
        CARD = "card"  # Teams: a card (the request, or its outcome as a follow-up)

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    channel = models.CharField(max_length=8, choices=Channel.choices)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    # Which activation request (by id) and which audit event caused it.
    request_id = models.UUIDField()
    event_seq = models.BigIntegerField()
    # Slack: a channel id, or "email:<address>" for a DM (looked up when sent). Teams: "".
    destination = models.CharField(max_length=300, blank=True)
    # What it says: "request", or the outcome ("granted", "denied", "canceled", "timed_out"),
    # or "ending" (the requester's access ends soon). One row per request, channel, kind,
    # destination and topic: writing it twice (a doubled job) writes nothing.
    topic = models.CharField(max_length=16)
    payload = models.JSONField()  # what to send (Slack blocks/text, or the Teams card)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField()
    next_attempt_at = models.DateTimeField()  # claimed as a lease, like notifications.Email
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)
    # Slack's answer to a post: the conversation and message ts, for later updates.
    slack_channel = models.CharField(max_length=64, blank=True)
    slack_ts = models.CharField(max_length=64, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["next_attempt_at"], condition=Q(status="pending"), name="integrations_chat_due_idx"
            ),
            models.Index(fields=["request_id", "channel", "kind"], name="integrations_chat_request_idx"),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["request_id", "channel", "kind", "destination", "topic"],
                name="integrations_chatmessage_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.channel} {self.kind} for {self.request_id} ({self.status})"


class DigestRun(models.Model):
    """One weekly digest sent (its ISO week), so a doubled or late job sends it once."""

    week = models.CharField(max_length=10, unique=True)  # "2026-W49"
    sent_at = models.DateTimeField()

    def __str__(self) -> str:
        return self.week
