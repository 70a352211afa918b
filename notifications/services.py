"""Queueing and sending email. Templates are triplets under templates/emails/:
<name>-subject.txt, <name>-body.txt and <name>-body.html. Only the HTML part is HTML-escaped:
the subject and the text part are plain text, rendered with the "text" template engine
(settings.TEMPLATES), so "O'Brien & Co" reads as written there."""

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import connection, transaction
from django.db.models import F
from django.template.loader import get_template
from django.utils import timezone

from common.broker import task_publish
from common.db import bulk_insert

from .models import Email, EmailAttachment

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 8
# A claimed email is not picked again for this long (a crashed sender's lease runs out).
SEND_LEASE = timedelta(minutes=5)
# The template engine without HTML escaping (settings.TEMPLATES) for subjects and text parts.
TEXT_ENGINE = "text"


@dataclass(frozen=True)
class Attachment:
    """A file to send with an email."""

    filename: str
    content: bytes
    content_type: str


def email_queue(
    *,
    recipients: Iterable[Any],
    template: str,
    context: dict[str, Any],
    now: datetime | None = None,
    attachments: Sequence[Attachment] = (),
) -> list[Email]:
    """Render the template for each recipient (a User or an address) and queue it, with the
    attachments (stored with each row); it is sent after the surrounding transaction commits."""
    now = now or timezone.now()
    # Loaded once, rendered for each recipient (render_to_string would look each one up again).
    subject_template = get_template(f"emails/{template}-subject.txt", using=TEXT_ENGINE)
    text_template = get_template(f"emails/{template}-body.txt", using=TEXT_ENGINE)
    html_template = get_template(f"emails/{template}-body.html")
    emails = []
    seen = set()
    for recipient in recipients:
        address = getattr(recipient, "email", recipient)
        if not address or address in seen:
            continue
        seen.add(address)
        full_context = {**context, "recipient": recipient, "base_url": settings.PIM_BASE_URL}
        subject = subject_template.render(full_context)
        emails.append(
            Email(
                template=template,
                to=address,
                # A header never carries a line break (header injection), whatever the data.
                subject=" ".join(subject.split())[:300],
                body_text=text_template.render(full_context),
                body_html=html_template.render(full_context),
                created_at=now,
                next_attempt_at=now,
            )
        )
    _emails_insert(emails)
    EmailAttachment.objects.bulk_create(
        EmailAttachment(
            email=email, filename=file.filename, content_type=file.content_type, content=file.content
        )
        for email in emails
        for file in attachments
    )
    ids = [email.pk for email in emails if email.pk]
    if ids:
        transaction.on_commit(lambda: _enqueue_send(ids))
    return emails


def _emails_insert(emails: list[Email]) -> None:
    """Insert the rows and set their ids. On PostgreSQL the ids are drawn from the table's
    sequence in one statement and the rows COPYed (a review start queues one per reviewer:
    thousands of wide rows, which an INSERT compiled by bulk_create spends most of its time
    on); elsewhere bulk_create."""
    if not emails or connection.vendor != "postgresql":
        Email.objects.bulk_create(emails)
        return
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT nextval(pg_get_serial_sequence(%s, 'id')) FROM generate_series(1, %s)",
            [Email._meta.db_table, len(emails)],
        )
        ids = [row[0] for row in cursor.fetchall()]
    for email, pk in zip(emails, ids, strict=True):
        email.pk = pk
    bulk_insert(Email, emails)
    for email in emails:  # saved, as bulk_create leaves them
        email._state.adding, email._state.db = False, connection.alias


def _enqueue_send(ids: list[int]) -> None:
    """One broker message for the emails one transaction queued (a review start writes one
    per reviewer, a sweep one per request): not a publish per row. Not queued (broker down
    or hung), they stay pending and the drain sends them."""
    from .tasks import email_send, email_send_many

    if len(ids) == 1:
        task_publish(email_send, ids[0])
    else:
        task_publish(email_send_many, ids)


def email_send_many(*, email_ids: list[int], now: datetime | None = None) -> int:
    """Send a batch queued by one message, each email claimed on its own (email_send)."""
    return sum(email_send(email_id=email_id, now=now) for email_id in email_ids)


def email_send(*, email_id: int, now: datetime | None = None) -> bool:
    """Claim the email (compare-and-swap on its lease) and send it; True if this call sent it."""
    now = now or timezone.now()
    claimed = Email.objects.filter(pk=email_id, status=Email.Status.PENDING, next_attempt_at__lte=now).update(
        next_attempt_at=now + SEND_LEASE, attempts=F("attempts") + 1
    )
    if claimed != 1:
        return False
    email = Email.objects.get(pk=email_id)
    message = EmailMultiAlternatives(
        email.subject,
        email.body_text,
        settings.DEFAULT_FROM_EMAIL,
        [email.to],
        headers={"Message-ID": email_message_id(email)},
    )
    message.attach_alternative(email.body_html, "text/html")
    for file in email.attachments.all():
        message.attach(file.filename, bytes(file.content), file.content_type)
    try:
        message.send()
    except Exception as error:  # SMTP trouble of any kind: retry with back-off, then give up
        retry_in = timedelta(minutes=2**email.attempts)
        status = Email.Status.FAILED if email.attempts >= MAX_ATTEMPTS else Email.Status.PENDING
        Email.objects.filter(pk=email_id).update(
            status=status, next_attempt_at=now + retry_in, last_error=str(error)[:500]
        )
        logger.warning("Sending email %s failed (attempt %s)", email_id, email.attempts)
        return False
    Email.objects.filter(pk=email_id).update(status=Email.Status.SENT, sent_at=timezone.now())
    return True


def email_message_id(email: Email) -> str:
    """The row's Message-ID, the same at every send: a resend after a crash (the SMTP server
    took it, the worker died before recording it) is the same message, which mail clients
    show once. The creation time keeps it unique even if a rebuilt database reuses the id."""
    stamp = email.created_at.strftime("%Y%m%d%H%M%S%f")
    return f"<pim-email-{email.pk}.{stamp}@{settings.PIM_EMAIL_MESSAGE_ID_DOMAIN}>"


def email_outbox_drain(*, now: datetime | None = None, limit: int = 500) -> int:
    """Send what is still pending and due (after an outage of the broker or SMTP)."""
    now = now or timezone.now()
    due = Email.objects.filter(status=Email.Status.PENDING, next_attempt_at__lte=now).order_by(
        "next_attempt_at"
    )
    return sum(
        email_send(email_id=email_id, now=now) for email_id in due.values_list("pk", flat=True)[:limit]
    )
