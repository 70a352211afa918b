"""Single sign-on in headless Chromium through a real OpenID Connect provider on loopback
(oidc-provider-mock): provider → the portal's own MFA → My roles; first-time just-in-time
creation with enrolment; a deactivated person refused with a clear message; a lockout after
wrong passwords, said with the time."""

from pathlib import Path

import pytest
import time_machine
from django.utils import timezone
from django_otp.plugins.otp_totp.models import TOTPDevice

from accounts.models import ExternalIdentity, User
from tests.factories import EligibleAssignmentFactory, RoleFactory, UserFactory, totp_code, totp_device
from tests.oidc import provider_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SHOTS = Path(__file__).resolve().parent.parent.parent / "var" / "screenshots"


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def sign_in_at_provider(page, sub):
    page.goto("/accounts/login/")
    page.get_by_role("button", name="Sign in with Test provider").click()
    page.wait_for_url("**/oauth2/authorize**")
    page.fill("input[name=sub]", sub)
    page.get_by_role("button", name="Authorize").click()


def test_sso_then_the_portals_mfa_then_my_roles(new_page, oidc_provider):
    user = UserFactory(username="sso-rita", display_name="Rita SSO")
    device = totp_device(user)
    ExternalIdentity.objects.create(user=user, issuer=oidc_provider, subject="rita-sub")
    EligibleAssignmentFactory(user=user, role=RoleFactory(name="Payroll Admin"))
    page = new_page()
    with time_machine.travel(timezone.now(), tick=True):
        page.goto("/accounts/login/")
        shot(page, "sso-login")
        sign_in_at_provider(page, "rita-sub")
        page.wait_for_url("**/accounts/verify/**")
        page.fill("input[name=otp_token]", totp_code(device))
        page.click("main button[type=submit]")
        page.wait_for_url("**/roles/")
    assert page.locator("h1").inner_text() == "My roles"
    assert page.get_by_text("Payroll Admin").count() >= 1


def test_first_sign_in_creates_the_person_who_then_enrols(new_page, oidc_provider, settings):
    settings.PIM_OIDC_CREATE_USERS = True
    provider_user(oidc_provider, "newcomer-sub", email="newcomer@example.com", name="New Comer")
    page = new_page()
    with time_machine.travel(timezone.now(), tick=True):
        sign_in_at_provider(page, "newcomer-sub")
        page.wait_for_url("**/accounts/mfa/enrol/**")
        person = ExternalIdentity.objects.get(subject="newcomer-sub").user
        assert person.display_name == "New Comer"
        page.get_by_role("button", name="Set up an authenticator app").click()
        device = TOTPDevice.objects.get(user=person, confirmed=False)
        page.fill("input[name=otp_token]", totp_code(device))
        page.get_by_role("button", name="Confirm").click()
        page.get_by_role("button", name="I have saved them: continue").click()
        page.wait_for_url("**/roles/")
    assert page.locator("h1").inner_text() == "My roles"


def test_a_deactivated_person_is_refused_with_a_clear_message(new_page, oidc_provider):
    user = UserFactory(username="sso-leaver", is_active=False)
    ExternalIdentity.objects.create(user=user, issuer=oidc_provider, subject="leaver-sub")
    page = new_page()
    sign_in_at_provider(page, "leaver-sub")
    page.wait_for_url("**/accounts/login/")
    assert page.get_by_text("Your PIM Portal account is deactivated").count() == 1
    shot(page, "sso-deactivated")
    page.set_viewport_size({"width": 390, "height": 844})
    shot(page, "sso-deactivated-390")
    page.goto("/roles/")
    assert "/accounts/login/" in page.url


def test_an_unlinked_account_is_told_to_ask_for_an_invitation(new_page, oidc_provider):
    UserFactory(username="stranger-sub", email="stranger-sub")  # same name and email: not a link
    page = new_page()
    sign_in_at_provider(page, "stranger-sub")
    page.wait_for_url("**/accounts/login/")
    assert page.get_by_text("not linked to PIM Portal").count() == 1
    assert not User.objects.get(username="stranger-sub").external_identities.exists()


def test_wrong_passwords_lock_out_with_the_time_to_try_again(new_page, settings):
    user = UserFactory(username="locked-larry")
    page = new_page()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        page.goto("/accounts/login/")
        page.fill("input[name=username]", user.username)
        page.fill("input[name=password]", "not-the-password")
        page.click("main button[type=submit]")
    assert page.get_by_text("try again at").count() == 1
    shot(page, "lockout")
