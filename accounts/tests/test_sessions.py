"""Sessions and the break-glass account: idle timeout, __Host- cookies in production, CSRF
rotation at step-up, other sessions ended by authenticator changes, the device admin gone,
no API tokens for the break-glass account and every request of it audited."""

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib import admin as django_admin
from django.test import Client
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.tests.helpers import events_after, last_seq
from alerts.rules import break_glass_sign_ins
from api.models import ApiToken
from api.services import api_token_create
from tests.factories import PASSWORD, UserFactory, totp_code, totp_device

NOON = datetime(2026, 3, 2, 12, 0, 5, tzinfo=UTC)
CLOCK_START = NOON
pytestmark = pytest.mark.usefixtures("clock")


def signed_in(user, device=None) -> Client:
    client = Client()
    device = device or totp_device(user)
    client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    client.post("/accounts/verify/", {"otp_token": totp_code(device)})
    client.device = device
    return client


def test_an_idle_session_ends(requester, clock, settings):
    settings.PIM_SESSION_IDLE_SECONDS = 1800  # the production default (tests/settings.py lifts it)
    client = signed_in(requester)
    assert client.get("/roles/").status_code == 200

    clock.shift(timedelta(seconds=settings.PIM_SESSION_IDLE_SECONDS - 60))
    assert client.get("/roles/").status_code == 200  # activity keeps it alive
    clock.shift(timedelta(seconds=settings.PIM_SESSION_IDLE_SECONDS + 1))

    response = client.get("/roles/", follow=True)
    assert response.redirect_chain[-1][0].startswith("/accounts/login/")
    assert "without activity" in response.content.decode()


def test_the_idle_timeout_is_a_setting(requester, clock, settings):
    settings.PIM_SESSION_IDLE_SECONDS = 120
    client = signed_in(requester)
    client.get("/roles/")
    clock.shift(timedelta(seconds=121))
    assert client.get("/roles/").status_code == 302


def test_the_csrf_token_rotates_at_step_up(requester, settings):
    client = Client()
    device = totp_device(requester)
    client.post("/accounts/login/", {"username": requester.username, "password": PASSWORD})
    client.get("/accounts/verify/")
    before = client.cookies[settings.CSRF_COOKIE_NAME].value

    client.post("/accounts/verify/", {"otp_token": totp_code(device)})

    assert client.cookies[settings.CSRF_COOKIE_NAME].value != before


def test_removing_an_authenticator_ends_the_other_sessions_only(requester, clock):
    phone = totp_device(requester)
    laptop = signed_in(requester, phone)
    desk = signed_in(requester, phone)
    spare = TOTPDevice.objects.create(user=requester, name="Spare", confirmed=True)
    clock.shift(timedelta(seconds=31))  # a new TOTP step for the step-up
    laptop.post("/accounts/verify/", {"otp_token": totp_code(phone)})

    response = laptop.post("/accounts/mfa/", {"device": spare.pk})

    assert response.status_code == 302
    assert laptop.get("/accounts/mfa/").status_code == 200
    assert desk.get("/roles/").status_code == 302  # signed out


def test_regenerating_recovery_codes_ends_the_other_sessions(requester):
    phone = totp_device(requester)
    laptop = signed_in(requester, phone)
    desk = signed_in(requester, phone)

    laptop.post("/accounts/mfa/recovery-codes/")

    assert laptop.get("/accounts/mfa/").status_code == 200
    assert desk.get("/roles/").status_code == 302


def test_the_device_admin_is_gone():
    assert not django_admin.site.is_registered(TOTPDevice)
    assert not django_admin.site.is_registered(StaticDevice)


def test_not_even_break_glass_reaches_a_device_admin_page(db):
    root = UserFactory(username="root", is_superuser=True)
    client = signed_in(root)
    assert client.get("/admin/otp_totp/totpdevice/").status_code == 404
    assert client.get("/admin/otp_totp/totpdevice/add/").status_code == 404
    assert client.get("/admin/otp_static/staticdevice/").status_code == 404


def test_break_glass_cannot_create_api_tokens(db):
    from django.core.exceptions import PermissionDenied

    root = UserFactory(username="root", is_superuser=True)
    with pytest.raises(PermissionDenied):
        api_token_create(actor=root, user=root, name="automation")
    with pytest.raises(PermissionDenied):
        api_token_create(actor=None, user=root, name="from the shell")
    assert not ApiToken.objects.exists()


def test_break_glass_token_page_refuses(db):
    root = UserFactory(username="root", is_superuser=True)
    client = signed_in(root)
    client.post("/api/tokens/new/", {"name": "x"})
    assert not ApiToken.objects.exists()


def test_every_request_of_break_glass_is_audited_and_alerted(db, clock):
    root = UserFactory(username="root", is_superuser=True)
    client = signed_in(root)
    seq = last_seq()

    client.get("/roles/")
    client.get("/audit/")

    events = events_after(seq, action="auth.break_glass_request")
    assert [(e.details["method"], e.details["path"]) for e in events] == [
        ("GET", "/roles/"),
        ("GET", "/audit/"),
    ]
    findings = break_glass_sign_ins(now=NOON + timedelta(minutes=1))
    keys = [finding.key for finding in findings]
    assert any(key.startswith(f"requests:{root.pk}:") for key in keys)


def test_other_people_requests_are_not_audited_as_break_glass(requester):
    client = signed_in(requester)
    seq = last_seq()
    client.get("/roles/")
    assert not events_after(seq, action="auth.break_glass_request")


def test_production_cookies_are_host_prefixed_and_check_deploy_is_clean(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "pim_portal.settings",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "k" * 60 + "production-like-secret-key-for-the-check",
        "PIM_AUDIT_CHAIN_KEY": "c" * 64,
        "DJANGO_ALLOWED_HOSTS": "pim.example.com",
        "PIM_DATA_DIR": str(tmp_path),
    }
    env.pop("DATABASE_URL", None)
    env.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)  # set in this process by the browser tests' fixtures
    code = (
        "import django; django.setup(); from django.conf import settings;"
        "print(settings.SESSION_COOKIE_NAME, settings.CSRF_COOKIE_NAME)"
    )
    names = subprocess.run(  # noqa: S603 - this interpreter, our own code
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert names.stdout.split() == ["__Host-sessionid", "__Host-csrftoken"]
    check = subprocess.run(  # noqa: S603 - this interpreter, manage.py
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_the_api_token_command_refuses_break_glass_plainly(db):
    from django.core.management import CommandError, call_command

    UserFactory(username="root", is_superuser=True)
    with pytest.raises(CommandError, match="break-glass account cannot have API tokens"):
        call_command("api_token", "create", "--user", "root", "--name", "x")
    assert not ApiToken.objects.exists()
