"""The email outbox: rendered and stored in the transaction that caused it, sent after commit,
claimed so it goes out once, and retried when the broker or the SMTP server is down."""

from datetime import timedelta
from smtplib import SMTPServerDisconnected
from unittest import mock

import pytest
from django.core import mail

from activations.models import ActivationRequest
from activations.tests.helpers import T0, eligible_for, request_activation, role_with
from notifications import services
from notifications.models import Email
from tests.factories import UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
CLOCK_START = T0  # the shared `clock` fixture (root conftest) stops time here

SEND = "django.core.mail.EmailMultiAlternatives.send"


@pytest.fixture
def pending_request(requester, approver):
    """A request waiting for approval, made inside the test's transaction (emails queued, not sent)."""
    return request_activation(requester, eligible_for(requester, role_with(approvers=[approver])))


def queue(recipients, request):
    return services.email_queue(
        recipients=recipients, template="request-closed", context={"request": request}
    )


# --- Queued in the transaction, sent after commit ----------------------------------------------


def test_an_email_is_stored_with_its_three_parts_and_sent_only_after_commit(
    requester, pending_request, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks() as callbacks:
        [email] = queue([requester], pending_request)
    assert email.status == Email.Status.PENDING and mail.outbox == []

    for callback in callbacks:
        callback()

    email.refresh_from_db()
    assert (email.status, email.attempts, email.sent_at) == (Email.Status.SENT, 1, T0)
    [message] = mail.outbox
    assert message.to == [requester.email]
    assert message.subject == email.subject and message.body == email.body_text
    assert message.alternatives[0] == (email.body_html, "text/html")


def test_one_email_per_address_and_none_for_people_without_one(pending_request, requester):
    nobody = UserFactory(email="")
    emails = queue([requester, nobody, requester, "audit@example.test"], pending_request)
    assert sorted(email.to for email in emails) == ["audit@example.test", requester.email]


def test_a_subject_never_carries_a_line_break(requester, approver):
    role = role_with(approvers=[approver])
    role.name = "Payroll\r\nBcc: victim@example.test"
    role.save()
    request_activation(requester, eligible_for(requester, role))

    assert Email.objects.exists()
    for email in Email.objects.all():
        assert "\n" not in email.subject and "\r" not in email.subject


def test_a_broker_outage_does_not_break_the_request_and_the_drain_sends_later(
    requester, approver, django_capture_on_commit_callbacks
):
    eligible = eligible_for(requester, role_with(approvers=[approver]))
    with mock.patch("notifications.tasks.email_send.apply_async", side_effect=ConnectionError("broker down")):
        with django_capture_on_commit_callbacks(execute=True):
            request = request_activation(requester, eligible)

    assert request.status == ActivationRequest.Status.PENDING_APPROVAL
    assert mail.outbox == []
    [email] = Email.objects.all()
    assert (email.to, email.status, email.attempts) == (approver.email, Email.Status.PENDING, 0)

    assert services.email_outbox_drain() == 1

    assert [message.to for message in mail.outbox] == [[approver.email]]
    assert services.email_outbox_drain() == 0


# --- Claims and retries ------------------------------------------------------------------------


def test_sending_twice_sends_once(pending_request):
    email = Email.objects.get()
    assert services.email_send(email_id=email.pk) is True
    assert services.email_send(email_id=email.pk) is False
    assert services.email_outbox_drain() == 0
    assert len(mail.outbox) == 1


def test_an_email_being_sent_is_not_picked_again_until_its_lease_runs_out(pending_request, clock):
    email = Email.objects.get()
    # A sender claimed it and died before recording the outcome.
    Email.objects.filter(pk=email.pk).update(next_attempt_at=T0 + services.SEND_LEASE, attempts=1)

    assert services.email_outbox_drain() == 0
    clock.move_to(T0 + services.SEND_LEASE, tick=False)
    assert services.email_outbox_drain() == 1
    assert Email.objects.get().attempts == 2


def test_an_smtp_failure_is_retried_with_back_off(pending_request, clock):
    email = Email.objects.get()
    with mock.patch(SEND, side_effect=SMTPServerDisconnected("Connection unexpectedly closed")):
        assert services.email_send(email_id=email.pk) is False

    email.refresh_from_db()
    assert (email.status, email.attempts) == (Email.Status.PENDING, 1)
    assert email.last_error == "Connection unexpectedly closed"
    assert email.next_attempt_at == T0 + timedelta(minutes=2)

    assert services.email_outbox_drain(now=T0 + timedelta(minutes=1)) == 0
    clock.move_to(T0 + timedelta(minutes=2), tick=False)
    with mock.patch(SEND, side_effect=SMTPServerDisconnected("again")):
        assert services.email_outbox_drain() == 0
    assert Email.objects.get().next_attempt_at == T0 + timedelta(minutes=2 + 4)

    clock.move_to(T0 + timedelta(minutes=6), tick=False)
    assert services.email_outbox_drain() == 1
    email.refresh_from_db()
    assert (email.status, email.attempts, email.sent_at) == (Email.Status.SENT, 3, T0 + timedelta(minutes=6))
    assert len(mail.outbox) == 1


def test_an_email_that_keeps_failing_is_given_up_after_the_maximum_attempts(pending_request):
    Email.objects.update(attempts=services.MAX_ATTEMPTS - 1)
    with mock.patch(SEND, side_effect=SMTPServerDisconnected("gone")):
        services.email_outbox_drain()

    email = Email.objects.get()
    assert (email.status, email.attempts) == (Email.Status.FAILED, services.MAX_ATTEMPTS)
    assert services.email_outbox_drain(now=T0 + timedelta(days=30)) == 0


# --- Plain text stays plain, HTML stays escaped (issue 12) ------------------------------------

AWKWARD = "O'Brien & Co <Ops>"


def test_the_text_part_and_subject_are_not_html_escaped_but_the_html_part_is(requester, approver):
    requester.display_name = AWKWARD
    requester.save()
    role = role_with(approvers=[approver], name=f"{AWKWARD} Administrator")
    pending = request_activation(requester, eligible_for(requester, role))
    [email] = services.email_queue(
        recipients=[approver], template="request-closed", context={"request": pending}
    )

    assert f"request of {AWKWARD} (requester) for {AWKWARD} Administrator" in email.body_text
    assert (
        "&#x27;" not in email.body_text and "&amp;" not in email.body_text and "&lt;" not in email.body_text
    )
    assert f"for {AWKWARD} Administrator" in email.subject
    assert "O&#x27;Brien &amp; Co &lt;Ops&gt;" in email.body_html
    assert "<Ops>" not in email.body_html


def test_every_text_template_renders_without_escaping(requester, approver):
    """All queued emails of a role with an awkward name: none of their text parts escapes."""
    role = role_with(approvers=[approver], name=f"{AWKWARD} Administrator")
    request_activation(requester, eligible_for(requester, role))  # the approval-request email
    emails = list(Email.objects.all())
    assert emails
    for email in emails:
        assert f"{AWKWARD} Administrator" in email.body_text, email.template
        assert "&amp;" not in email.body_text + email.subject, email.template


# --- Attachments -------------------------------------------------------------------------------


def test_attachments_are_stored_with_each_row_and_sent_with_every_attempt(
    requester, approver, pending_request, django_capture_on_commit_callbacks
):
    report = services.Attachment(
        filename="report.xlsx", content=b"PK\x03\x04 bytes", content_type="application/zip"
    )
    with mock.patch(SEND, side_effect=SMTPServerDisconnected("gone")):
        with django_capture_on_commit_callbacks(execute=True):
            emails = services.email_queue(
                recipients=[requester, approver],
                template="request-closed",
                context={"request": pending_request},
                attachments=[report],
            )
    assert [email.attachments.count() for email in emails] == [1, 1]
    assert mail.outbox == []  # the first attempt failed: the rows (and their files) wait
    services.email_outbox_drain(now=T0 + timedelta(hours=1))
    with_files = {message.to[0]: message.attachments for message in mail.outbox if message.attachments}
    assert with_files == {
        address: [("report.xlsx", b"PK\x03\x04 bytes", "application/zip")]
        for address in (requester.email, approver.email)
    }
