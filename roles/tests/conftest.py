from tests.smtp import smtp_mailbox  # noqa: F401 - the loopback SMTP fixture
