"""The activation emails as they leave: text and HTML parts, escaped user text, the approval link.
Sent after commit by the Celery task (eager in tests)."""

import re
from urllib.parse import urlsplit

import pytest
from django.core import mail
from django.urls import reverse

from activations import services
from activations.tokens import approval_token_problem
from tests.factories import UserFactory

from .test_views_support import (
    ESCAPED_XSS,
    HOUR,
    NOON,
    XSS,
    eligible_for,
    pending_request,
    role_with,
    sign_in,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
CLOCK_START = NOON  # the shared `clock` fixture (root conftest) stops time here


def html_part(message) -> str:
    [(content, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return content


def parts(message) -> tuple[str, str]:
    return message.body, html_part(message)


def assert_escaped(text, html):
    """The HTML part escapes markup; the text part is plain text, shown as written (escaping
    it would show "&lt;" to the reader, and a text part is never parsed as HTML)."""
    assert XSS not in html
    assert ESCAPED_XSS in html
    assert XSS in text
    assert ESCAPED_XSS not in text


def test_html_in_a_justification_is_escaped_in_the_html_part_of_the_approval_email(
    approver, django_capture_on_commit_callbacks
):
    requester = UserFactory(username="mallory", display_name="<b>Mallory</b>")
    eligible = eligible_for(requester, role_with(approvers=[approver], require_ticket=True))
    client = sign_in(requester)

    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("activations:activate", args=[eligible.pk]),
            {"duration": "60", "justification": XSS, "ticket_number": XSS, "otp_token": ""},
        )

    [message] = mail.outbox
    text, html = parts(message)
    assert_escaped(text, html)
    assert "<b>Mallory</b>" not in html and "&lt;b&gt;Mallory&lt;/b&gt;" in html
    assert "<b>Mallory</b>" in text  # plain text, as written
    assert "\n" not in message.subject and "\r" not in message.subject
    assert "1 hour" in text and "1 hour" in html


def test_each_approver_gets_a_link_of_their_own_in_both_parts(
    requester, approver, reviewer, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        activation = pending_request(requester, approver, reviewer)

    assert len(mail.outbox) == 2
    for message in mail.outbox:
        text, html = parts(message)
        [link] = re.findall(r"http\S+\?t=\S+", text)
        assert f'<a href="{link}">' in html
        assert urlsplit(link).path == activation.get_absolute_url()
        token = urlsplit(link).query.removeprefix("t=")
        owner = approver if message.to == [approver.email] else reviewer
        other = reviewer if owner == approver else approver
        assert approval_token_problem(token, request=activation, user=owner) is None
        assert approval_token_problem(token, request=activation, user=other) == (
            "This approval link was sent to another approver."
        )
        assert "Opening the link does not approve anything." in text


def test_the_decision_email_escapes_the_reason_in_both_parts(
    requester, approver, django_capture_on_commit_callbacks
):
    activation = pending_request(requester, approver, justification="ok")

    with django_capture_on_commit_callbacks(execute=True):
        services.activation_deny(approver=approver, request=activation, reason=XSS, mfa_verified_at=NOON)

    decided = [m for m in mail.outbox if m.to == [requester.email]]
    assert len(decided) == 1 and "Denied" in decided[0].subject
    assert_escaped(*parts(decided[0]))


def test_the_revocation_email_escapes_the_reason_in_both_parts(
    requester, admin, django_capture_on_commit_callbacks
):
    activation = services.activation_request(
        requester=requester,
        eligible=eligible_for(requester, role_with()),
        duration=HOUR,
        justification="ok",
        mfa_verified_at=NOON,
    )
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        services.activation_revoke(actor=admin, request=activation, reason=XSS)

    [message] = mail.outbox
    assert message.to == [requester.email]
    assert_escaped(*parts(message))
    assert activation.get_absolute_url() in message.body


def test_role_names_are_escaped_in_the_closed_and_granted_emails(
    requester, approver, django_capture_on_commit_callbacks
):
    role = role_with(approvers=[approver], name=XSS)
    activation = pending_request(requester, role=role)
    with django_capture_on_commit_callbacks(execute=True):
        services.activation_cancel(actor=requester, request=activation)
    with django_capture_on_commit_callbacks(execute=True):
        services.activation_request(
            requester=requester,
            eligible=eligible_for(requester, role_with(name=XSS + "!")),
            duration=HOUR,
            justification="ok",
            mfa_verified_at=NOON,
        )

    closed, granted = mail.outbox
    assert "canceled" in closed.subject and closed.to == [approver.email]
    assert "is active until" in granted.subject and granted.to == [requester.email]
    for message in (closed, granted):
        assert_escaped(*parts(message))


def test_subjects_are_plain_one_line_text(approver, django_capture_on_commit_callbacks):
    requester = UserFactory(username="obrien", display_name="Pat O'Brien\r\nBcc: victim@example.test")

    with django_capture_on_commit_callbacks(execute=True):
        pending_request(requester, approver, name="R&D <Admin>")

    [message] = mail.outbox
    assert message.subject == (
        "Approval needed: Activation of R&D <Admin> for Pat O'Brien Bcc: victim@example.test"
    )
    assert list(message.extra_headers) == ["Message-ID"] and message.bcc == []  # nothing injected
    assert "Pat O'Brien" in message.body  # the text part is plain text
    assert "Pat O&#x27;Brien" in html_part(message)  # the HTML part stays escaped
