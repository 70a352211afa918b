"""Development emails (issue 12): printed readably when no SMTP server is set, and an inbox
page under /dev/emails/ with DJANGO_DEBUG."""

import io

import pytest
from django.core import mail
from django.core.mail import EmailMultiAlternatives
from django.utils import timezone

from notifications.backends import ReadableConsoleBackend, links_on_their_own_lines
from notifications.models import Email

pytestmark = pytest.mark.django_db

LINK = "http://127.0.0.1:8000/activations/requests/5f1c/?token=abc"


def test_links_get_lines_of_their_own():
    text = f"Decide at {LINK} within a day, or see http://127.0.0.1:8000/roles/.\n{LINK}\nBye"
    assert links_on_their_own_lines(text).splitlines() == [
        "Decide at",
        LINK,
        "within a day, or see",
        "http://127.0.0.1:8000/roles/",
        LINK,
        "Bye",
    ]


def test_the_console_backend_prints_the_text_part_not_mime():
    stream = io.StringIO()
    message = EmailMultiAlternatives(
        "Approval needed: O'Brien & Co",
        f"Hello Bob,\n\nDecide here: {LINK}\n",
        "pim@localhost",
        ["bob@example.test"],
    )
    message.attach_alternative("<p>Hello</p>", "text/html")
    assert ReadableConsoleBackend(stream=stream).send_messages([message]) == 1
    printed = stream.getvalue()
    assert "Subject:  Approval needed: O'Brien & Co" in printed
    assert "Email to: bob@example.test" in printed
    assert f"\n{LINK}\n" in printed
    assert "Content-Type" not in printed and "MIME-Version" not in printed and "=?utf-8?" not in printed
    assert "<p>Hello</p>" not in printed


def test_it_is_the_default_without_an_smtp_server():
    from pim_portal import settings as portal_settings

    assert (
        portal_settings.EMAIL_HOST
        or portal_settings.EMAIL_BACKEND == "notifications.backends.ReadableConsoleBackend"
    )


@pytest.fixture
def debug(settings):
    settings.DEBUG = True


@pytest.fixture
def queued():
    return Email.objects.create(
        template="request-closed",
        to="bob@example.test",
        subject="Activation of R&D <Admin> canceled",
        body_text=f"Hello <Bob>,\nSee {LINK} now.\n",
        body_html="<p>Hello &lt;Bob&gt;</p>",
        created_at=timezone.now(),
        next_attempt_at=timezone.now(),
    )


def test_the_inbox_lists_and_shows_emails_with_clickable_links(debug, queued, requester, verified_client):
    client = verified_client(requester)
    listing = client.get("/dev/emails/").content.decode()
    assert "Activation of R&amp;D &lt;Admin&gt; canceled" in listing
    detail = client.get(f"/dev/emails/{queued.pk}/").content.decode()
    assert "Hello &lt;Bob&gt;," in detail and "<Bob>" not in detail
    escaped_link = LINK.replace("&", "&amp;")
    assert f'<a href="{escaped_link}">{escaped_link}</a>' in detail


def test_the_inbox_is_not_there_without_debug(queued, requester, verified_client):
    client = verified_client(requester)
    assert client.get("/dev/emails/").status_code == 404
    assert client.get(f"/dev/emails/{queued.pk}/").status_code == 404


def test_the_inbox_needs_a_signed_in_verified_person(debug, queued, client):
    response = client.get("/dev/emails/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")
    assert mail.outbox == []
