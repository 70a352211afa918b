"""Administration entirely in the portal, in a real browser: a PIM Administrator finds a role
from the navigation, changes its settings (a duration in hours, approval on, an approver found
by searching, the who-approves line following along, a summary to confirm) and makes someone
eligible; a wrong duration and a refused assignment keep what was typed and say what to change.

Screenshots (desktop and 390 px wide) go to $PIM_TEST_SCREENSHOTS (default
/tmp/pim-screenshots/): manage-roles-*.png."""

import os
from datetime import timedelta
from pathlib import Path

import pytest
import time_machine
from django.utils import timezone
from playwright.sync_api import expect

from audit.models import AuditEvent
from roles.models import EligibleAssignment, RoleSettings
from roles.selectors import PIM_ADMINISTRATOR
from tests.factories import (
    PASSWORD,
    ActiveAssignmentFactory,
    RoleFactory,
    UserFactory,
    portal_role,
    totp_code,
    totp_device,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOTS = Path(os.environ.get("PIM_TEST_SCREENSHOTS", "/tmp/pim-screenshots"))  # noqa: S108


def shoot(page, name: str) -> None:
    """A full-page screenshot at desktop width and at 390 px, and the page fits at 390 px."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=SCREENSHOTS / f"manage-roles-{name}-desktop.png", full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=SCREENSHOTS / f"manage-roles-{name}-390.png", full_page=True)
    width = page.evaluate("document.querySelector('main').scrollWidth")
    assert width <= 390, f"{name}: the page's content is {width} px wide at 390 px"
    page.set_viewport_size({"width": 1280, "height": 900})


def sign_in(page, user, device):
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/accounts/verify/**")
    page.fill("input[name=otp_token]", totp_code(device))
    page.click("main button[type=submit]")


def test_an_administrator_changes_settings_and_assigns_an_eligibility_in_the_portal(new_page):
    ada = UserFactory(username="ada", display_name="Ada Admin")
    ActiveAssignmentFactory(
        user=ada,
        role=portal_role(PIM_ADMINISTRATOR),
        origin="activation",
        ends_at=timezone.now() + timedelta(hours=4),
    )
    device = totp_device(ada)
    UserFactory(username="bob", display_name="Bob O'Brien", email="bob@example.test")
    alice = UserFactory(username="alice", display_name="Alice Example", email="alice@example.test")
    role = RoleFactory(name="Payroll Administrator", description="Runs the payroll")
    page = new_page()

    with time_machine.travel(timezone.now(), tick=True):
        page.goto("/")
        sign_in(page, ada, device)
        page.wait_for_url("**/roles/")

        # From the navigation to the Roles list, search, and the role's page.
        page.click("#nav-manage-roles")
        page.wait_for_url("**/manage/roles/")
        page.fill("input[name=q]", "payroll")
        page.click("#role-filters button[type=submit]")
        page.wait_for_url("**/manage/roles/?q=payroll**")
        assert page.locator("#role-table tbody tr").count() == 1
        shoot(page, "list")
        page.click("text=Payroll Administrator")
        page.wait_for_url(f"**/manage/roles/{role.pk}/")
        assert "the PIM Administrators" in page.locator("#who-approves").inner_text()

        # The settings editor: a wrong duration is explained and nothing is saved.
        page.click("#edit-settings")
        page.wait_for_url(f"**/manage/roles/{role.pk}/settings/")
        assert (
            "Allowed: between 30 minutes and 24 hours."
            in page.locator("#field-activation_max_duration").inner_text()
        )
        page.fill("#id_activation_max_duration_0", "36")
        page.click("#review-changes")
        page.wait_for_load_state()
        error = page.locator("#field-activation_max_duration .field-errors").inner_text()
        assert "36 hours is out of range: enter a duration between 30 minutes and 24 hours." in error
        assert RoleSettings.objects.get(role=role).activation_max_duration == timedelta(hours=8)

        # 4 hours, approval on, Bob found by searching: the who-approves line follows.
        page.fill("#id_activation_max_duration_0", "4")
        page.check("#id_require_approval")
        page.fill("#id_approvers_add", "o'bri")
        page.locator("#suggestions-people option").first.wait_for(state="attached")
        assert page.locator("#suggestions-people option").first.get_attribute("value") == "bob"
        page.fill("#id_approvers_add", "bob")
        expect(page.locator("#who-approves")).to_contain_text("Bob O'Brien")
        assert (
            "Who approves this role: the named approvers: Bob O'Brien."
            in page.locator("#who-approves").inner_text()
        )
        shoot(page, "settings")
        page.click("#review-changes")
        page.wait_for_selector("#change-summary")
        summary = page.locator("#change-summary").inner_text()
        assert "8 hours" in summary and "4 hours" in summary and "Bob O'Brien" in summary
        assert RoleSettings.objects.get(role=role).require_approval is False  # not saved yet
        shoot(page, "confirm")
        page.click("#confirm-save")
        page.wait_for_url(f"**/manage/roles/{role.pk}/")
        assert "Settings of Payroll Administrator saved." in page.locator(".messages").inner_text()
        saved = RoleSettings.objects.get(role=role)
        assert saved.activation_max_duration == timedelta(hours=4) and saved.require_approval
        assert [user.username for user in saved.approvers.all()] == ["bob"]
        assert AuditEvent.objects.filter(action="role_settings.changed", actor_id=ada.pk).count() == 1

        # An eligibility: a refused one keeps the form, then the right one goes through.
        page.click("#add-eligible")
        page.wait_for_url(f"**/manage/roles/{role.pk}/eligible/new/")
        page.fill("#id_principal", "alic")
        page.locator("#suggestions-principals option").first.wait_for(state="attached")
        page.fill("#id_principal", "alice")
        page.fill("#id_duration", "400")
        page.fill("#id_justification", "Covers month-end close")
        page.click("#assign")
        page.wait_for_load_state()
        error = page.locator("#field-duration .field-errors").inner_text()
        assert "400 days is longer than this role allows: at most 365 days." in error
        assert page.input_value("#id_principal") == "alice"
        assert page.input_value("#id_justification") == "Covers month-end close"
        shoot(page, "assignment-refused")
        page.fill("#id_duration", "90")
        page.click("#assign")
        page.wait_for_url(f"**/manage/roles/{role.pk}/")
        assert (
            "Alice Example is now eligible for Payroll Administrator"
            in page.locator(".messages").inner_text()
        )
        assert "Alice Example" in page.locator("#eligible-assignments").inner_text()
        shoot(page, "role")

    assignment = EligibleAssignment.objects.get(role=role, user=alice)
    assert assignment.created_by == ada and assignment.justification == "Covers month-end close"
    assert assignment.ends_at - assignment.starts_at == timedelta(days=90)
