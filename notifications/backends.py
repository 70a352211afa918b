"""An email back end for development: each email printed as a person would read it (headers
that matter, then the plain-text part, every link on a line of its own), not as raw MIME.

The default when no SMTP server is configured (EMAIL_HOST empty), so `make run` shows emails
in the worker's output; the development inbox page (notifications.views) shows them too."""

import re
import threading
from collections.abc import Sequence
from typing import Any

from django.core.mail import EmailMessage
from django.core.mail.backends.console import EmailBackend as ConsoleBackend

# A link, less the punctuation that ends the sentence around it.
_LINK = re.compile(r"https?://[^\s<>\"]*[^\s<>\".,;:!?)]")
RULE = "─" * 72


def links_on_their_own_lines(text: str) -> str:
    """The text with every http(s) link moved onto a line of its own (a terminal turns a bare
    line into something to click or copy whole)."""
    lines = []
    for line in text.splitlines():
        if not _LINK.search(line) or _LINK.fullmatch(line.strip()):
            lines.append(line)
            continue
        rest = line
        for match in list(_LINK.finditer(line)):
            before, _, rest = rest.partition(match.group(0))
            if before.strip():
                lines.append(before.strip())
            lines.append(match.group(0))
        if rest.strip(" .,;:!?"):  # a sentence's last full stop is not worth a line
            lines.append(rest.strip())
    return "\n".join(lines)


def readable(message: EmailMessage) -> str:
    header = [
        RULE,
        f"Email to: {', '.join(message.to)}",
        f"From:     {message.from_email}",
        f"Subject:  {message.subject}",
    ]
    alternatives = [mimetype for _content, mimetype in getattr(message, "alternatives", [])]
    if alternatives:
        header.append(f"Also:     a part in {', '.join(alternatives)} (see /dev/emails/ with DJANGO_DEBUG)")
    body = links_on_their_own_lines(str(message.body))
    return "\n".join([*header, "", body.rstrip(), RULE, ""])


class ReadableConsoleBackend(ConsoleBackend):
    """Django's console back end, printing readable text instead of the MIME message."""

    def send_messages(self, email_messages: Sequence[EmailMessage]) -> int:
        if not email_messages:
            return 0
        sent = 0
        lock: threading.RLock = self._lock  # set by ConsoleBackend
        with lock:
            stream: Any = self.stream
            for message in email_messages:
                stream.write(readable(message))
                stream.flush()
                sent += 1
        return sent
