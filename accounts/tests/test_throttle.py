"""Brute force: wrong passwords and codes lock the account and the address (django-axes), the
right password is refused during the lockout with the time to try again, and the audit log
grows by a bounded number of events however many attempts an attacker makes."""

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import SESSION_KEY
from django.test import RequestFactory

from accounts.tests.helpers import last_seq, sign_in_password, wrong_code
from audit.models import AuditEvent
from common.client import client_address
from tests.factories import PASSWORD, totp_device

NOON = datetime(2026, 3, 2, 12, 0, 5, tzinfo=UTC)
CLOCK_START = NOON
pytestmark = pytest.mark.usefixtures("clock")

ATTACKER = "203.0.113.9"


def attempt(client, username, password="wrong-password", address=ATTACKER):  # noqa: S107 - a wrong one
    return client.post("/accounts/login/", {"username": username, "password": password}, REMOTE_ADDR=address)


def test_200_wrong_passwords_lock_out_and_grow_the_audit_log_by_a_bounded_number(client, requester, settings):
    seq = last_seq()
    limit = settings.AXES_FAILURE_LIMIT

    answers = [attempt(client, requester.username).status_code for _ in range(200)]

    assert answers[: limit - 1] == [200] * (limit - 1)  # the form again, "wrong password"
    assert set(answers[limit:]) == {429}
    events = AuditEvent.objects.filter(seq__gt=seq)
    assert events.count() <= 3, list(events.values_list("action", "details"))
    locked = events.get(action="auth.locked_out")
    assert locked.details == {"username": requester.username, "failures": limit}
    assert locked.ip == ATTACKER


def test_the_right_password_during_the_lockout_is_refused_with_the_time(client, requester, settings, clock):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, requester.username)

    response = attempt(client, requester.username, PASSWORD)

    assert response.status_code == 429
    assert SESSION_KEY not in client.session
    until = NOON + settings.AXES_COOLOFF_TIME
    assert f"try again at {until:%H:%M} UTC" in response.content.decode()

    clock.shift(settings.AXES_COOLOFF_TIME + timedelta(seconds=1))
    assert attempt(client, requester.username, PASSWORD).status_code == 302


def test_the_account_is_locked_from_every_address(client, requester, settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, requester.username, address=f"198.51.100.{n + 1}")

    assert attempt(client, requester.username, PASSWORD, address="192.0.2.200").status_code == 429


def test_the_address_is_locked_for_every_account(client, requester, approver, settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, f"someone{n}")

    assert attempt(client, approver.username, PASSWORD).status_code == 429
    assert attempt(client, approver.username, PASSWORD, address="192.0.2.7").status_code == 302


def test_signing_in_to_an_own_account_does_not_reset_the_address(client, requester, approver, settings):
    for n in range(settings.AXES_FAILURE_LIMIT - 1):
        attempt(client, f"victim{n}")
    assert attempt(client, approver.username, PASSWORD).status_code == 302
    client.post("/accounts/logout/")

    attempt(client, "victim-last")

    assert attempt(client, requester.username, PASSWORD).status_code == 429


def test_case_and_spaces_do_not_make_another_account(client, requester, settings):
    for n in range(settings.AXES_FAILURE_LIMIT):
        attempt(client, f" {requester.username.upper()} ", address=f"198.51.100.{n + 1}")
    assert attempt(client, requester.username, PASSWORD, address="192.0.2.200").status_code == 429


def test_a_first_wrong_password_is_audited_and_the_repeats_are_not(client, requester):
    seq = last_seq()
    for _ in range(3):
        attempt(client, requester.username)
    events = AuditEvent.objects.filter(seq__gt=seq, action="auth.sign_in_failed")
    assert [e.details for e in events] == [{"username": requester.username, "failures": 1}]


def test_wrong_codes_count_like_wrong_passwords(client, requester, settings):
    device = totp_device(requester)
    sign_in_password(client, requester)
    bad = wrong_code(device)
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        client.post("/accounts/verify/", {"otp_token": bad}, REMOTE_ADDR=ATTACKER)
    locking = client.post("/accounts/verify/", {"otp_token": bad}, REMOTE_ADDR=ATTACKER)
    assert locking.status_code == 200 and "try again at" in locking.content.decode()
    assert "Confirm it" in locking.content.decode()  # still the code page

    response = client.post("/accounts/verify/", {"otp_token": bad}, REMOTE_ADDR=ATTACKER)

    assert response.status_code == 429
    assert "try again at" in response.content.decode()


def test_the_client_address_is_remote_addr_without_trusted_proxies(settings):
    settings.PIM_TRUSTED_PROXIES = []
    request = RequestFactory().get("/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="1.2.3.4")
    assert client_address(request) == "10.0.0.5"


def test_behind_trusted_proxies_the_first_untrusted_hop_from_the_right_counts(settings):
    settings.PIM_TRUSTED_PROXIES = ["10.0.0.0/8"]
    request = RequestFactory().get(
        "/", REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7, 10.0.0.9"
    )
    # 6.6.6.6 is what the client wrote itself: never believed.
    assert client_address(request) == "203.0.113.7"


def test_a_direct_client_cannot_spoof_its_address(settings):
    settings.PIM_TRUSTED_PROXIES = ["10.0.0.0/8"]
    request = RequestFactory().get("/", REMOTE_ADDR="203.0.113.50", HTTP_X_FORWARDED_FOR="10.0.0.1")
    assert client_address(request) == "203.0.113.50"


def test_lockouts_follow_the_forwarded_address_behind_a_trusted_proxy(client, requester, approver, settings):
    settings.PIM_TRUSTED_PROXIES = ["10.0.0.0/8"]
    for n in range(settings.AXES_FAILURE_LIMIT):
        client.post(
            "/accounts/login/",
            {"username": f"x{n}", "password": "nope"},
            REMOTE_ADDR="10.0.0.5",
            HTTP_X_FORWARDED_FOR=ATTACKER,
        )
    other_client = client.post(
        "/accounts/login/",
        {"username": approver.username, "password": PASSWORD},
        REMOTE_ADDR="10.0.0.5",
        HTTP_X_FORWARDED_FOR="192.0.2.44",
    )
    assert other_client.status_code == 302  # the proxy's address itself is not locked
