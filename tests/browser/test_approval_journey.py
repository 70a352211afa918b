"""The journey of issue 3 in a real browser: a requester activates a role that needs
approval; the approver gets the email (real SMTP on loopback), follows its link, signs in with
TOTP and approves; the requester sees the role active with time left; after the end it is gone."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from activations.models import ActivationRequest
from roles.services import role_settings_update
from tests.browser.conftest import first_link, message_parts
from tests.factories import (
    PASSWORD,
    EligibleAssignmentFactory,
    RoleFactory,
    UserFactory,
    totp_code,
    totp_device,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CODE_STEP = timedelta(seconds=31)  # a TOTP code works once: the next step needs the next window


def sign_in(page, user, device):
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/accounts/verify/**")
    page.fill("input[name=otp_token]", totp_code(device))
    page.click("main button[type=submit]")


def test_requester_activates_approver_approves_by_email_link_and_access_ends(new_page, smtp_server):
    requester = UserFactory(username="rita", display_name="Rita Requester")
    approver = UserFactory(username="arne", display_name="Arne Approver")
    requester_device, approver_device = totp_device(requester), totp_device(approver)
    role = RoleFactory(name="Payroll Administrator")
    role_settings_update(
        actor=None,
        role=role,
        changes={"require_approval": True, "activation_max_duration": timedelta(hours=2)},
        approvers=[approver],
    )
    EligibleAssignmentFactory(user=requester, role=role)
    rita, arne = new_page(), new_page()

    with time_machine.travel(timezone.now(), tick=True) as clock:
        # The requester signs in and asks for the role for one hour.
        rita.goto("/roles/")
        sign_in(rita, requester, requester_device)
        rita.wait_for_url("**/roles/")
        rita.click("a.activate")
        rita.select_option("select[name=duration]", "60")
        rita.fill("textarea[name=justification]", "Payroll run <b>November</b>")
        clock.shift(CODE_STEP)
        rita.fill("input[name=otp_token]", totp_code(requester_device))
        rita.click("#activate-form button[type=submit]")
        rita.wait_for_url("**/activations/requests/*/")
        assert "Pending approval" in rita.locator("main").inner_text()
        request = ActivationRequest.objects.get(requester=requester)
        assert request.status == ActivationRequest.Status.PENDING_APPROVAL

        # The approver's email arrives over SMTP; both parts escape the justification.
        message = smtp_server.wait_for(lambda m: m["To"] == approver.email)
        text, html = message_parts(message)
        # The HTML part escapes it; the text part is plain text and shows it as typed.
        assert "<b>November</b>" not in html and "&lt;b&gt;November&lt;/b&gt;" in html
        assert "Payroll run <b>November</b>" in text
        link = first_link(text)
        assert str(request.pk) in link and "?t=" in link

        # Following the link: sign in first, land on the request, the token leaves the URL.
        arne.goto(link)
        assert "/accounts/login/" in arne.url
        clock.shift(CODE_STEP)
        sign_in(arne, approver, approver_device)
        arne.wait_for_url(f"**/activations/requests/{request.pk}/")
        assert "?t=" not in arne.url
        request.refresh_from_db()
        assert request.status == ActivationRequest.Status.PENDING_APPROVAL  # opening changed nothing
        assert "Payroll run <b>November</b>" in arne.locator("main").inner_text()

        # The approver approves with a fresh code.
        clock.shift(CODE_STEP)
        arne.fill("#decision-form textarea[name=reason]", "Scheduled payroll run")
        arne.fill("#decision-form input[name=otp_token]", totp_code(approver_device))
        arne.click("#decision-form button[value=approve]")
        arne.wait_for_load_state()
        request.refresh_from_db()
        assert request.status == ActivationRequest.Status.GRANTED
        assert request.ends_at == request.granted_at + timedelta(hours=1)  # the clock starts at grant

        # The requester hears of it and sees the role active with time left.
        smtp_server.wait_for(lambda m: m["To"] == requester.email and "Granted" in m["Subject"])
        rita.goto("/roles/?tab=active")
        active = rita.locator("section#active")
        shown = active.inner_text().replace("\xa0", " ")
        assert "Payroll Administrator" in shown
        assert "(in 1 hour)" in shown or "(in 59 minutes)" in shown

        # After the end the role is gone, whether or not any job ran.
        clock.move_to(request.ends_at + timedelta(seconds=1))
        rita.goto("/roles/?tab=active")
        active = rita.locator("section#active")
        assert "Payroll Administrator" not in active.inner_text()
