"""Browser tests: headless Debian Chromium driven by Playwright against the live server, with
email delivered to a real SMTP server on loopback (aiosmtpd).

Never `playwright install`: the browser is the system's /usr/bin/chromium (.ci/run installs it).
"""

import os
import re
from dataclasses import dataclass, field

import pytest
from django.conf import settings as django_settings
from django_otp.oath import TOTP

from tests.factories import PASSWORD
from tests.smtp import smtp_mailbox  # noqa: F401 - the loopback SMTP fixture

# Playwright's sync API runs an event loop in the test thread; Django would then refuse the
# test's own (synchronous) database calls. The test thread is not serving requests.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = os.environ.get("PIM_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-first-run",
]


def message_parts(message) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",)).get_content()
    html = message.get_body(preferencelist=("html",)).get_content()
    return text, html


def first_link(text: str) -> str:
    return re.search(r"https?://\S+", text).group(0)


@pytest.fixture
def smtp_server(smtp_mailbox):  # noqa: F811 - the fixture imported above, asked for by name
    """The loopback SMTP server (tests.smtp) the live server's emails go to."""
    return smtp_mailbox


@pytest.fixture(scope="session")
def chromium():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (.ci/run installs Debian's chromium)")
    from playwright.sync_api import sync_playwright

    playwright = sync_playwright().start()
    browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture
def new_page(chromium, live_server, settings):
    """A function giving a fresh browser context (a separate person) with a page."""
    settings.PIM_BASE_URL = live_server.url
    contexts = []

    def make():
        context = chromium.new_context(base_url=live_server.url)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


# --- No secret in any log of a journey -------------------------------------------------------

TEST_TOOL_LOGGERS = {"factory", "faker", "mail", "asyncio"}
STANDALONE_SIX_DIGITS = re.compile(r"(?<![\w.:,-])(\d{6})(?!\w)")
API_TOKEN = re.compile(r"pim_[0-9a-f]{12}_[A-Za-z0-9_-]{20,}")
LINK_TOKEN = re.compile(r"[?&]t=([^&\s\"'>]+)")


@dataclass
class JourneySecrets:
    """What a journey's logs must never hold: the TOTP codes computed during it (by the test's
    authenticator and by the server's check), the password, API token secrets shown on pages,
    and the approval links' tokens of the emails sent."""

    codes: set = field(default_factory=set)
    extra: set = field(default_factory=set)
    lines: list = field(default_factory=list)  # the JSON log lines so far


@pytest.fixture(autouse=True)
def no_secret_in_the_logs(request, monkeypatch):
    """Every log record of the journey, through the production JSON formatter at DEBUG, then
    searched for secrets once the journey is over."""
    import logging
    import logging.config

    from pim_portal.middleware import RequestIdLogFilter

    secrets_seen = JourneySecrets()
    # The journey's mailbox, held from the start: the fixture is torn down before this one ends.
    mailbox = request.getfixturevalue("smtp_server") if "smtp_server" in request.fixturenames else None
    token = TOTP.token

    def recording_token(self):
        code = token(self)
        secrets_seen.codes.add(f"{code:06d}")
        return code

    monkeypatch.setattr(TOTP, "token", recording_token)
    lines = secrets_seen.lines

    class Keep(logging.Handler):
        def emit(self, record):
            # The test's own tools log what they are given (factory-boy the password it sets,
            # aiosmtpd the emails it receives): not the portal's logs.
            if record.name.split(".")[0] not in TEST_TOOL_LOGGERS:
                lines.append(self.format(record))

    handler = Keep(logging.DEBUG)
    configurator = logging.config.DictConfigurator({})
    handler.setFormatter(
        configurator.configure_formatter(dict(django_settings.LOGGING["formatters"]["json"]))
    )
    handler.addFilter(RequestIdLogFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield secrets_seen
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    if mailbox is not None:
        for message in mailbox.messages:
            text, _html = message_parts(message)
            secrets_seen.extra.update(LINK_TOKEN.findall(text))
    logs = "\n".join(lines)
    assert lines, "nothing was logged: the capture is broken"
    leaked = [f"TOTP code {code}" for code in set(STANDALONE_SIX_DIGITS.findall(logs)) & secrets_seen.codes]
    leaked += [f"API token {match[:8]}…" for match in API_TOKEN.findall(logs)]
    leaked += [f"the password: {line[:300]}" for line in lines if PASSWORD in line]
    leaked += [f"secret {value[:4]}…" for value in secrets_seen.extra if value in logs]
    assert leaked == [], "secrets in the logs of the journey"


# The loopback OpenID Connect provider (tests/oidc.py) for the single sign-on journeys.
from tests.oidc import oidc_provider, oidc_server  # noqa: E402, F401

# Where browser tests leave their screenshots (CI keeps the folder as an artefact).
SCREENSHOT_DIR = os.environ.get("PIM_TEST_SCREENSHOTS", "/tmp/pim-screenshots")  # noqa: S108


@pytest.fixture
def screenshot(request):
    """A function saving a page's full screenshot as <test module>-<name>.png in SCREENSHOT_DIR."""
    os.makedirs(SCREENSHOT_DIR, exist_ok=True)
    prefix = request.module.__name__.rsplit(".", 1)[-1].removeprefix("test_")

    def take(page, name: str) -> str:
        path = os.path.join(SCREENSHOT_DIR, f"{prefix}-{name}.png")
        page.screenshot(path=path, full_page=True)
        return path

    return take
