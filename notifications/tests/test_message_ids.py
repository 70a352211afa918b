"""Every email carries a Message-ID fixed per outbox row: a resend of the same row (a worker
killed after the SMTP server took the message, before the row said "sent") is the same
message, which mail clients show once; two rows are two messages."""

import pytest
from django.core import mail
from django.utils import timezone

from notifications import services
from notifications.models import Email

pytestmark = pytest.mark.django_db


def outbox_row(to="rita@example.test") -> Email:
    now = timezone.now()
    return Email.objects.create(
        template="test",
        to=to,
        subject="Hello",
        body_text="Hello",
        body_html="<p>Hello</p>",
        created_at=now,
        next_attempt_at=now,
    )


def crash_after_sending(email: Email) -> None:
    """As if the sender died after SMTP accepted the message: pending again, lease run out."""
    Email.objects.filter(pk=email.pk).update(status=Email.Status.PENDING, next_attempt_at=timezone.now())


def message_ids() -> list[str]:
    return [message.message()["Message-ID"] for message in mail.outbox]


def test_sending_the_same_row_again_sends_the_same_message_id():
    email = outbox_row()

    assert services.email_send(email_id=email.pk) is True
    crash_after_sending(email)
    assert services.email_send(email_id=email.pk) is True

    first, second = message_ids()
    assert first == second == services.email_message_id(email)


def test_two_rows_get_two_message_ids():
    one, other = outbox_row(), outbox_row(to="arne@example.test")

    assert services.email_outbox_drain() == 2

    assert sorted(message_ids()) == sorted([services.email_message_id(one), services.email_message_id(other)])
    assert len(set(message_ids())) == 2


def test_the_message_id_names_the_row_and_the_configured_domain(settings):
    settings.PIM_EMAIL_MESSAGE_ID_DOMAIN = "pim.example.org"
    email = outbox_row()

    services.email_send(email_id=email.pk)

    [message_id] = message_ids()
    assert message_id.startswith(f"<pim-email-{email.pk}.") and message_id.endswith("@pim.example.org>")
