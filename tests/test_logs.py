"""Log lines (settings.LOGGING, pim_portal.middleware.RequestLogMiddleware): one line per
request with its request id, user id, path, status and duration; JSON in production, plain in
development; never a query string (an approval link's token travels there)."""

import io
import json
import logging
import logging.config
import subprocess
import sys

import pytest
from django.conf import settings

from pim_portal.middleware import QueryStringRedactFilter, RequestIdLogFilter

pytestmark = pytest.mark.django_db


@pytest.fixture
def json_log():
    """The request logger's lines, through the production JSON formatter."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    configurator = logging.config.DictConfigurator({})
    handler.setFormatter(configurator.configure_formatter(dict(settings.LOGGING["formatters"]["json"])))
    handler.addFilter(RequestIdLogFilter())
    logger = logging.getLogger("pim_portal.requests")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.DEBUG)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    logger.removeHandler(handler)
    logger.setLevel(level)


def test_one_json_line_per_request_with_its_request_id_and_user(verified_client, requester, json_log):
    client = verified_client(requester)

    response = client.get("/roles/?t=secret-link-token&page=2")

    (line,) = [entry for entry in json_log() if entry["path"] == "/roles/"]
    assert line["request_id"] == response["X-Request-ID"]
    assert line["user_id"] == requester.pk
    assert line["method"] == "GET" and line["status"] == 200
    assert line["level"] == "INFO" and line["logger"] == "pim_portal.requests"
    assert isinstance(line["duration_ms"], float)
    assert line["time"].endswith("+00:00")
    assert "secret-link-token" not in json.dumps(json_log())


def test_an_anonymous_request_has_no_user_and_a_failure_is_logged_with_its_status(client, json_log):
    client.get("/no/such/page/")

    (line,) = json_log()
    assert line["user_id"] is None and line["status"] == 404


def test_successful_probes_are_logged_at_debug_only(client, json_log):
    client.get("/healthz")

    (line,) = json_log()
    assert line["level"] == "DEBUG"


def test_the_development_server_lines_lose_their_query_strings():
    record = logging.LogRecord(
        "django.server", logging.INFO, "", 0, '"%s" %s %s', ("GET /a/?t=abc123 HTTP/1.1", "302", "0"), None
    )

    QueryStringRedactFilter().filter(record)

    assert record.getMessage() == '"GET /a/?[redacted] HTTP/1.1" 302 0'


def settings_value(expression: str, **env: str) -> str:
    """Evaluate the production settings in a fresh interpreter with `env` (they are read once)."""
    code = f"import pim_portal.settings as s; print({expression})"
    base = {"PATH": "/usr/bin:/bin", "DJANGO_SECRET_KEY": "x" * 50, "PIM_AUDIT_CHAIN_KEY": "y" * 40}
    result = subprocess.run(  # noqa: S603 - our own interpreter and code
        [sys.executable, "-c", code],
        cwd=settings.BASE_DIR,
        env={**base, **env},
        capture_output=True,
        text=True,
    )
    return (result.stdout + result.stderr).strip()


def test_json_in_production_plain_in_development_and_a_bad_value_is_refused(tmp_path):
    formatter = 's.LOGGING["handlers"]["console"]["formatter"]'
    data = str(tmp_path)

    assert settings_value(formatter, DJANGO_DEBUG="0", PIM_DATA_DIR=data) == "json"
    assert settings_value(formatter, DJANGO_DEBUG="1", PIM_DATA_DIR=data) == "plain"
    assert settings_value(formatter, DJANGO_DEBUG="0", PIM_LOG_FORMAT="plain", PIM_DATA_DIR=data) == "plain"
    assert "PIM_LOG_FORMAT must be json or plain" in settings_value(
        formatter, DJANGO_DEBUG="0", PIM_LOG_FORMAT="xml", PIM_DATA_DIR=data
    )


def test_django_s_own_request_warnings_carry_the_request_id_and_never_the_query_string(client, json_log):
    handler = logging.getLogger("pim_portal.requests").handlers[-1]
    django_request = logging.getLogger("django.request")
    django_request.addHandler(handler)
    try:
        response = client.get("/metrics?t=secret-link-token")
    finally:
        django_request.removeHandler(handler)

    warning = next(line for line in json_log() if line["logger"] == "django.request")
    assert warning["message"] == "Unauthorized: /metrics"
    assert warning["request_id"] == response["X-Request-ID"]
    assert "secret-link-token" not in json.dumps(json_log())


def test_the_request_line_costs_no_query(verified_client, requester, django_assert_num_queries, json_log):
    client = verified_client(requester)

    with django_assert_num_queries(0):
        client.get("/healthz")

    (line,) = [entry for entry in json_log() if entry["path"] == "/healthz"]
    assert line["user_id"] is None  # answered before the session: nobody is looked up
