import pytest
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


def sign_in(page, user, device):
    page.goto("/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/accounts/verify/**")
    page.fill("input[name=otp_token]", totp_code(device))
    page.click("main button[type=submit]")


def test_a_person_signs_in_with_password_and_totp_and_sees_their_roles(new_page):
    user = UserFactory(username="browser-user")
    device = totp_device(user)
    EligibleAssignmentFactory(user=user, role=RoleFactory(name="Payroll <b>Admin</b>"))
    page = new_page()
    with time_machine.travel(timezone.now(), tick=True):
        sign_in(page, user, device)
        page.wait_for_url("**/roles/")
    assert page.locator("h1").inner_text() == "My roles"
    # The role name is shown as text, never as markup.
    assert page.get_by_text("Payroll <b>Admin</b>").count() == 1
    assert page.locator("b", has_text="Admin").count() == 0


def test_a_wrong_code_keeps_the_person_out(new_page):
    user = UserFactory(username="browser-wrong")
    totp_device(user)
    page = new_page()
    page.goto("/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/accounts/verify/**")
    page.fill("input[name=otp_token]", "000000")
    page.click("main button[type=submit]")
    assert "/accounts/verify/" in page.url
    page.goto("/roles/")
    assert "/accounts/verify/" in page.url
