"""A real SMTP server on loopback (aiosmtpd) for tests that check who gets which email."""

import email
import email.policy
import socket
import threading
from dataclasses import dataclass, field

import pytest
from aiosmtpd.controller import Controller


@dataclass
class Mailbox:
    """What the loopback SMTP server received: (envelope recipients, parsed message) pairs,
    in the order they arrived."""

    received: list = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.arrived:
            self.received.append((list(envelope.rcpt_tos), message))
            self.arrived.notify_all()
        return "250 OK"

    @property
    def messages(self) -> list:
        """The parsed messages, in the order they arrived."""
        with self.arrived:
            return [message for _, message in self.received]

    def to(self, address: str) -> list[str]:
        """The subjects of the emails that reached the address."""
        return [str(message["Subject"]) for rcpts, message in self.received if address in rcpts]

    def addresses(self, subject_part: str = "") -> set[str]:
        return {
            rcpt
            for rcpts, message in self.received
            if subject_part in str(message["Subject"])
            for rcpt in rcpts
        }

    def wait_for(self, predicate, timeout: float = 10.0):
        """The first message matching predicate, waiting for delivery (no sleeping): for a
        live server, whose emails go out from its own threads."""
        with self.arrived:
            found = self.arrived.wait_for(lambda: self._first(predicate), timeout)
        if not found:
            subjects = [message["Subject"] for message in self.messages]
            raise AssertionError(f"no matching email within {timeout}s; got {subjects}")
        return found

    def _first(self, predicate):
        return next((message for _, message in self.received if predicate(message)), None)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_mailbox(settings):
    """Emails go over SMTP to a server on loopback, which records them."""
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST = "127.0.0.1"
    settings.EMAIL_PORT = controller.port
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    yield mailbox
    controller.stop()
