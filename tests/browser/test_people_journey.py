"""People in a real browser: a PIM Administrator invites a person, who gets the email over
SMTP, chooses a password and enrols an authenticator; the administrator then resets their MFA.
Screenshots for the record in var/screenshots/ (people-list, people-detail, also at 390 px)."""

from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import User
from roles.selectors import PIM_ADMINISTRATOR
from tests.browser.conftest import first_link, message_parts
from tests.factories import (
    PASSWORD,
    ActiveAssignmentFactory,
    UserFactory,
    portal_role,
    totp_code,
    totp_device,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(__file__).resolve().parent.parent.parent / "var" / "screenshots"


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(SHOTS / f"{name}-390.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 800})


def test_invite_accept_enrol_and_reset(new_page, smtp_server):
    admin = UserFactory(username="ada", display_name="Ada Admin")
    ActiveAssignmentFactory(
        user=admin,
        role=portal_role(PIM_ADMINISTRATOR),
        origin="activation",
        ends_at=timezone.now() + timedelta(hours=4),
    )
    device = totp_device(admin)
    UserFactory(username="boss", display_name="The Boss")
    page = new_page()
    with time_machine.travel(timezone.now(), tick=True):
        page.goto("/manage/people/")
        page.fill("input[name=username]", admin.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("main button[type=submit]")
        page.fill("input[name=otp_token]", totp_code(device))
        page.click("main button[type=submit]")
        page.wait_for_url("**/manage/people/")
        shot(page, "people-list")
        page.get_by_role("button", name="Invite a person").click()
        page.fill("input[name=username]", "nina")
        page.fill("input[name=email]", "nina@example.com")
        page.fill("input[name=display_name]", "Nina New")
        page.fill("input[name=manager]", "boss")
        page.get_by_role("button", name="Send the invitation").click()
        page.wait_for_url("**/manage/people/*/")
        shot(page, "people-detail")
        text, _ = message_parts(smtp_server.wait_for(lambda m: "invited" in m["Subject"]))
        nina = User.objects.get(username="nina")
        assert nina.manager.username == "boss"

        invitee = new_page()
        invitee.goto(first_link(text))
        invitee.fill("input[name=password1]", "a-long-new-passphrase")
        invitee.fill("input[name=password2]", "a-long-new-passphrase")
        invitee.get_by_role("button", name="Set my password").click()
        invitee.wait_for_url("**/accounts/mfa/enrol/**")
        invitee.get_by_role("button", name="Set up an authenticator app").click()
        pending = TOTPDevice.objects.get(user=nina, confirmed=False)
        invitee.fill("input[name=otp_token]", totp_code(pending))
        invitee.get_by_role("button", name="Confirm").click()
        invitee.get_by_role("button", name="I have saved them: continue").click()
        invitee.wait_for_url("**/roles/")

        page.reload()
        page.fill("#reset-reason", "lost phone")
        page.get_by_role("button", name="Reset MFA").click()
        assert page.get_by_text("authenticators were removed").count() == 1
    assert not TOTPDevice.objects.filter(user=nina).exists()
    invitee.goto("/roles/")
    assert "/accounts/login/" in invitee.url
