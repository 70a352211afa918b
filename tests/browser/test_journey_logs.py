"""Logs of a journey (README "Logs"): a person mistypes the password, signs in with password and
TOTP, makes an API token on its page and uses it with a TOTP code to activate a role. Every
request is one JSON line with its request id; no password, code or token appears in any log
line (the browser conftest's no_secret_in_the_logs fixture searches them after every journey)."""

import json

import pytest
import requests
import time_machine
from django.utils import timezone

from tests.factories import (
    PASSWORD,
    EligibleAssignmentFactory,
    RoleFactory,
    UserFactory,
    totp_code,
    totp_device,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WRONG_PASSWORD = "Tr0ub4dor&3-wrong-password"


def test_a_journey_logs_one_json_line_per_request_and_no_secret(new_page, live_server, no_secret_in_the_logs):
    user = UserFactory(username="logged-user")
    device = totp_device(user)
    eligible = EligibleAssignmentFactory(user=user, role=RoleFactory(name="Log Reader"))
    page = new_page()
    no_secret_in_the_logs.extra.add(WRONG_PASSWORD)

    with time_machine.travel(timezone.now(), tick=True) as clock:
        page.goto("/accounts/login/")
        page.fill("input[name=username]", user.username)
        page.fill("input[name=password]", WRONG_PASSWORD)
        page.click("main button[type=submit]")
        page.fill("input[name=password]", PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_url("**/accounts/verify/**")
        page.fill("input[name=otp_token]", totp_code(device))
        page.click("main button[type=submit]")
        page.wait_for_url("**/roles/")

        page.goto("/api/tokens/new/")
        page.fill("input[name=name]", "deploy script")
        page.click("main button[type=submit]")
        secret = page.locator("code.secret").inner_text().strip()
        assert secret.startswith("pim_")
        no_secret_in_the_logs.extra.add(secret)

        clock.shift(31)  # the next TOTP step: a code works once
        code = totp_code(device)
        response = requests.post(
            f"{live_server.url}/api/v1/activation-requests/",
            json={"eligible": str(eligible.pk), "duration": 3600, "justification": "Logs", "otp_code": code},
            headers={"Authorization": f"Bearer {secret}"},
            timeout=30,
        )
        assert response.status_code == 201, response.text

    requests_logged = [
        json.loads(line) for line in no_secret_in_the_logs.lines if '"logger": "pim_portal.requests"' in line
    ]
    api_line = next(line for line in requests_logged if line["path"] == "/api/v1/activation-requests/")
    assert api_line["request_id"] == response.headers["X-Request-ID"]
    assert api_line["user_id"] == user.pk and api_line["status"] == 201
    paths = {line["path"] for line in requests_logged}
    assert {"/accounts/login/", "/roles/", "/api/tokens/new/"} <= paths
