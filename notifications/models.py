"""Outbound email, written in the transaction that caused it and sent after commit.

Keeping the email as a row (an outbox) means a broker or SMTP outage loses nothing: the send
task claims it, and the periodic drain retries whatever is still pending.
"""

from django.db import models
from django.db.models import Q


class Email(models.Model):
    """One rendered email to one recipient."""

    class Status(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        FAILED = "failed"

    template = models.CharField(max_length=100)
    to = models.EmailField()
    subject = models.CharField(max_length=300)
    body_text = models.TextField()
    body_html = models.TextField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField()
    # When the next attempt may start; a claim pushes it forward (a lease) so two senders
    # never send the same email at once. Used by email_outbox_drain.
    next_attempt_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True)

    class Meta:
        indexes = [
            models.Index(
                fields=["next_attempt_at"], condition=Q(status="pending"), name="notifications_due_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.template} to {self.to} ({self.status})"


class EmailAttachment(models.Model):
    """A file sent with an outbox email (a review's report), stored with the row so a resend
    after an outage sends the same bytes."""

    email = models.ForeignKey(Email, on_delete=models.CASCADE, related_name="attachments")
    filename = models.CharField(max_length=200)
    content_type = models.CharField(max_length=200)
    content = models.BinaryField()

    def __str__(self) -> str:
        return f"{self.filename} ({self.content_type})"
