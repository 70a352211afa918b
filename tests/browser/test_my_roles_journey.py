"""Issue 12 in a real browser, the requester's side: My roles in its tabs shows the request
waiting for approval on its row (with its approvers), three roles are activated in one step
with one justification and one code, and a direct active assignment ending soon is extended.
The browser's time zone is recorded on the first visit and every time is then shown in it.
Screenshots (desktop and 390 px) go to PIM_TEST_SCREENSHOTS."""

import os
from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import expect

from activations.models import ActivationRequest
from activations.services import activation_request
from roles.models import ActiveAssignment
from roles.services import role_settings_update
from tests.browser.conftest import CHROMIUM
from tests.factories import (
    PASSWORD,
    ActiveAssignmentFactory,
    EligibleAssignmentFactory,
    RoleFactory,
    UserFactory,
    totp_code,
    totp_device,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CODE_STEP = timedelta(seconds=31)
SCREENSHOT_DIR = os.environ.get("PIM_TEST_SCREENSHOTS", "/tmp/pim-screenshots")  # noqa: S108 - artefacts


def shoot(page, name: str) -> None:
    """A full-page screenshot at desktop width and at 390 px (the page must not scroll sideways)."""
    os.makedirs(SCREENSHOT_DIR, exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=f"{SCREENSHOT_DIR}/{name}-desktop.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=f"{SCREENSHOT_DIR}/{name}-390.png", full_page=True)
    width = page.evaluate("document.querySelector('main').scrollWidth")
    assert width <= 390, f"{name}: the page's content scrolls sideways at 390 px ({width} px)"
    page.set_viewport_size({"width": 1280, "height": 900})


def sign_in(page, user, device):
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/accounts/verify/**")
    page.fill("input[name=otp_token]", totp_code(device))
    page.click("main button[type=submit]")


def approval_role(name, approver):
    role = RoleFactory(name=name)
    role_settings_update(actor=None, role=role, changes={"require_approval": True}, approvers=[approver])
    return role


@pytest.fixture
def paris_page(chromium, live_server, settings):
    """A browser in Paris (the time zone the portal should pick up)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip("no chromium")
    settings.PIM_BASE_URL = live_server.url
    context = chromium.new_context(base_url=live_server.url, timezone_id="Europe/Paris")
    context.set_default_timeout(10_000)
    yield context.new_page()
    context.close()


def test_requester_sees_the_pending_request_activates_three_roles_and_extends_one(paris_page):
    page = paris_page
    requester = UserFactory(username="rita", display_name="Rita Requester")
    approver = UserFactory(username="arne", display_name="Arne Approver")
    device = totp_device(requester)
    waiting = approval_role("Mail Migrator", approver)
    waiting_eligibility = EligibleAssignmentFactory(user=requester, role=waiting)
    three = [
        RoleFactory(name="Ledger Viewer"),
        RoleFactory(name="Desk Operator"),
        approval_role("Vault Keeper", approver),
    ]
    for role in three:
        EligibleAssignmentFactory(user=requester, role=role)
    on_call = RoleFactory(name="Duty Engineer")
    role_settings_update(actor=None, role=on_call, changes={"require_approval": True}, approvers=[approver])

    with time_machine.travel(timezone.now(), tick=True) as clock:
        now = timezone.now()
        activation_request(
            requester=requester,
            eligible=waiting_eligibility,
            duration=timedelta(hours=1),
            justification="Mailbox migration",
            mfa_verified_at=now,
        )
        direct = ActiveAssignmentFactory(
            user=requester, role=on_call, starts_at=now - timedelta(days=30), ends_at=now + timedelta(days=3)
        )

        # First visit: the browser's time zone is recorded, the page shows Paris time.
        page.goto("/roles/")
        sign_in(page, requester, device)
        page.wait_for_url("**/roles/")
        expect(page.locator("#nav-time-zone")).to_have_text("Europe/Paris")  # after the reload
        main = page.locator("main").inner_text()
        assert "CET" in main or "CEST" in main

        # The pending request sits on its row: status, approver, cancel; no Activate there.
        row = page.locator("tr[data-role='Mail Migrator']")
        assert "Pending approval" in row.inner_text() and "Arne Approver" in row.inner_text()
        assert row.locator("a.activate").count() == 0
        assert row.get_by_role("button", name="Cancel request").count() == 1
        shoot(page, "my-roles-pending")

        # Three roles in one step: tick them, one justification, one code.
        for role in three:
            page.check(f"tr[data-role='{role.name}'] input[name=eligible]")
        clock.shift(timedelta(minutes=10))  # the sign-in's check is no longer fresh: one code for all
        page.click("#activate-several")
        page.wait_for_url("**/activations/activate/?*")
        assert "(required)" in page.locator("label[for=id_otp_token]").inner_text()
        page.fill("textarea[name=justification]", "Quarter close")
        page.fill("input[name=otp_token]", totp_code(device))
        shoot(page, "activate-several-form")
        page.click("#activate-several-form button[type=submit]")
        page.wait_for_url("**/roles/")
        messages = page.locator("ul.messages").inner_text()
        assert "Ledger Viewer: active until" in messages and "Desk Operator: active until" in messages
        assert "Sent for approval to 1 approver." in messages
        assert (
            ActivationRequest.objects.filter(requester=requester, justification="Quarter close").count() == 3
        )
        assert "Active" in page.locator("tr[data-role='Ledger Viewer'] .row-status").inner_text()
        assert "Pending approval" in page.locator("tr[data-role='Vault Keeper']").inner_text()
        shoot(page, "my-roles-after-activating-three")

        # Active tab: extend the direct assignment ending in 3 days.
        page.click("#tab-active")
        page.wait_for_url("**/roles/?tab=active")
        shoot(page, "my-roles-active")
        page.click(f"tr[data-active='{direct.pk}'] a.extend")
        page.fill("input[name=days]", "30")
        page.fill("textarea[name=justification]", "Still on call this month")
        page.click("#eligibility-change-form button[type=submit]")
        page.wait_for_url("**/activations/requests/*/")
        assert "Sent for approval to 1 approver." in page.locator("ul.messages").inner_text()
        extension = ActivationRequest.objects.get(kind="extend")
        assert extension.active_target_id == direct.pk
        page.goto("/roles/?tab=active")
        assert "Extension requested" in page.locator(f"tr[data-active='{direct.pk}']").inner_text()
        shoot(page, "my-roles-extension-requested")
        assert ActiveAssignment.objects.get(pk=direct.pk).ends_at == direct.ends_at  # until approved
