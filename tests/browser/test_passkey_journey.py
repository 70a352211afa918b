"""Passkeys in a real browser (issue 11), with Chromium's virtual authenticator (DevTools
protocol WebAuthn domain, through Playwright's CDP session): a requester enrols a passkey on
the Security page and activates a role whose authentication strength is phishing-resistant;
a code is refused for it with a clear message; an approver approves a phishing-resistant
role's request with a passkey after a code was refused; a person signs in with a passkey;
and a token opens an API step-up window with a passkey assertion made in the browser."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone
from django_otp_webauthn.models import WebAuthnCredential

from activations.models import ActivationRequest, Approval
from api.models import ApiToken
from api.services import api_token_create
from audit.models import AuditEvent
from roles.models import AuthenticationStrength
from roles.services import role_settings_update
from tests.factories import (
    PASSWORD,
    EligibleAssignmentFactory,
    RoleFactory,
    UserFactory,
    totp_code,
    totp_device,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHISHING_RESISTANT = AuthenticationStrength.PHISHING_RESISTANT
SCREENSHOTS = "var/screenshots"


@pytest.fixture(autouse=True)
def relying_party(live_server, settings):
    settings.OTP_WEBAUTHN_RP_ID = "localhost"
    settings.OTP_WEBAUTHN_ALLOWED_ORIGINS = [live_server.url]
    assert live_server.url.startswith("http://localhost:")


def virtual_authenticator(page, cdp=None):
    """A platform authenticator that verifies the user and answers at once; returns the CDP
    session and the authenticator's id."""
    if cdp is None:
        cdp = page.context.new_cdp_session(page)
        cdp.send("WebAuthn.enable")
    options = {
        "protocol": "ctap2",
        "transport": "internal",
        "hasResidentKey": True,
        "hasUserVerification": True,
        "isUserVerified": True,
        "automaticPresenceSimulation": True,
    }
    return cdp, cdp.send("WebAuthn.addVirtualAuthenticator", {"options": options})["authenticatorId"]


def sign_in(page, user, device) -> None:
    page.goto("/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/accounts/verify/**")
    page.fill("input[name=otp_token]", totp_code(device))
    page.click("main form button[type=submit]")
    page.wait_for_url("**/roles/")


def enrol_passkey(page, name: str) -> None:
    page.goto("/accounts/mfa/")
    page.click("#add-passkey")
    page.wait_for_url("**/accounts/mfa/passkeys/add/")
    page.fill("#passkey-name", name)
    page.click("#passkey-add-form button[type=submit]")
    try:
        page.wait_for_url("**/accounts/mfa/")
    except Exception:
        raise AssertionError(page.locator("[data-passkey-status]").inner_text()) from None
    assert name in page.locator("#passkeys").inner_text()


def test_a_passkey_activates_a_phishing_resistant_role_that_a_code_cannot(new_page):
    person = UserFactory(username="pia", display_name="Pia Passkey")
    device = totp_device(person)
    role = RoleFactory(name="Vault Administrator")
    role_settings_update(
        actor=None, role=role, changes={"activation_authentication_strength": PHISHING_RESISTANT}
    )
    eligible = EligibleAssignmentFactory(user=person, role=role)
    page = new_page()
    cdp, laptop = virtual_authenticator(page)

    with time_machine.travel(timezone.now(), tick=True):
        sign_in(page, person, device)

        # Without a passkey: the page says what is needed and why; the code step-up of the
        # sign-in a moment ago is refused for this role, with the reason.
        page.goto(f"/activations/activate/{eligible.pk}/")
        policy = page.locator("#strength-needed").inner_text()
        assert "Needs a passkey" in policy and "phishing-resistant" in policy
        assert "You have no passkey yet" in page.locator("#passkey-notice").inner_text()
        assert page.locator("input[name=otp_token]").count() == 0
        page.fill("textarea[name=justification]", "Rotate the vault keys")
        page.click("#activate-form button[type=submit]")
        refusal = page.locator("#activate-form").inner_text()
        assert "Vault Administrator needs a passkey to activate" in refusal
        assert "an authenticator app code is not accepted" in refusal
        assert not ActivationRequest.objects.filter(requester=person).exists()

        # Two passkeys, named; then the activation asks for one and goes through.
        enrol_passkey(page, "Laptop <b>fingerprint</b>")
        # An authenticator holds one passkey per account: the second comes from another one.
        page.goto("/accounts/mfa/passkeys/add/")
        page.fill("#passkey-name", "Same laptop again")
        page.click("#passkey-add-form button[type=submit]")
        status = page.wait_for_selector("[data-passkey-status]:not([hidden])")
        assert "already holds one of your passkeys" in status.inner_text()
        cdp.send("WebAuthn.removeVirtualAuthenticator", {"authenticatorId": laptop})
        virtual_authenticator(page, cdp)
        enrol_passkey(page, "Spare key")
        assert list(
            WebAuthnCredential.objects.filter(user=person).values_list("name", flat=True).order_by("pk")
        ) == [
            "Laptop <b>fingerprint</b>",
            "Spare key",
        ]
        page.screenshot(path=f"{SCREENSHOTS}/passkeys-security.png", full_page=True)
        page.goto(f"/activations/activate/{eligible.pk}/")
        assert "your browser asks for one of your passkeys" in page.locator("#passkey-notice").inner_text()
        page.screenshot(path=f"{SCREENSHOTS}/passkeys-activate.png", full_page=True)
        page.set_viewport_size({"width": 390, "height": 900})
        page.screenshot(path=f"{SCREENSHOTS}/passkeys-activate-390.png", full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})
        page.fill("textarea[name=justification]", "Rotate the vault keys")
        page.click("#activate-form button[type=submit]")
        page.wait_for_url("**/activations/requests/*/")
        assert "active until" in page.locator("main").inner_text()

    activation = ActivationRequest.objects.get(requester=person)
    assert activation.status == ActivationRequest.Status.GRANTED
    assert activation.mfa_factor == "passkey"
    assert AuditEvent.objects.filter(action="mfa.passkey_enrolled", actor_id=person.pk).count() == 2
    granted = AuditEvent.objects.get(action="activation.granted", target_id=str(activation.pk))
    assert granted.details["mfa_factor"] == "passkey"


def test_approving_a_phishing_resistant_role_takes_a_passkey(new_page):
    requester, approver = UserFactory(username="rolf"), UserFactory(username="anja")
    approver_device = totp_device(approver)
    role = RoleFactory(name="Treasury Administrator")
    role_settings_update(
        actor=None,
        role=role,
        changes={"require_approval": True, "approval_authentication_strength": PHISHING_RESISTANT},
        approvers=[approver],
    )
    eligible = EligibleAssignmentFactory(user=requester, role=role)
    from activations.services import activation_request

    request = activation_request(
        requester=requester,
        eligible=eligible,
        duration=timedelta(hours=1),
        justification="Quarter close",
        mfa_verified_at=timezone.now(),
        mfa_factor="totp",
    )
    page = new_page()
    virtual_authenticator(page)

    with time_machine.travel(timezone.now(), tick=True):
        sign_in(page, approver, approver_device)
        page.goto(f"/activations/requests/{request.pk}/")
        notice = page.locator("#passkey-notice").inner_text()
        assert "Approving needs a passkey" in notice and "phishing-resistant" in notice
        page.click("#decision-form button[value=approve]")
        refusal = page.locator("main").inner_text()
        assert "Approving requests for Treasury Administrator needs a passkey" in refusal
        assert "an authenticator app code is not accepted" in refusal
        request.refresh_from_db()
        assert request.status == ActivationRequest.Status.PENDING_APPROVAL

        enrol_passkey(page, "Desk key")
        page.goto(f"/activations/requests/{request.pk}/")
        page.screenshot(path=f"{SCREENSHOTS}/passkeys-approve.png", full_page=True)
        page.fill("textarea[name=reason]", "Checked with the team")
        page.click("#decision-form button[value=approve]")
        page.wait_for_selector("text=Approved:")

    request.refresh_from_db()
    assert request.status == ActivationRequest.Status.GRANTED
    assert Approval.objects.get(request=request).mfa_factor == "passkey"


# The browser half of an API client's passkey step-up: the options from the API, the
# assertion from the authenticator, the answer back to the API, with the bearer token.
API_PASSKEY_STEP_UP = """async (token) => {
  const headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"};
  const begin = await fetch("/api/v1/step-up/passkey-options/", {method: "POST", headers});
  const options = PublicKeyCredential.parseRequestOptionsFromJSON((await begin.json()).publicKey);
  const credential = await navigator.credentials.get({publicKey: options});
  const answer = JSON.stringify({passkey: credential.toJSON()});
  const first = await fetch("/api/v1/step-up/", {method: "POST", headers, body: answer});
  const replay = await fetch("/api/v1/step-up/", {method: "POST", headers, body: answer});
  return {first: [first.status, await first.json()], replay: [replay.status, await replay.json()]};
}"""


def test_a_passkey_assertion_opens_an_api_step_up_window(new_page):
    person = UserFactory(username="tom")
    device = totp_device(person)
    _token, raw = api_token_create(actor=None, user=person, name="automation")
    page = new_page()
    virtual_authenticator(page)

    with time_machine.travel(timezone.now(), tick=True):
        sign_in(page, person, device)
        enrol_passkey(page, "Build agent key")

        # Signing in again: the password, then the passkey instead of a code.
        page.click("nav button:has-text('Sign out')")
        page.goto("/accounts/login/")
        page.fill("input[name=username]", person.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("main button[type=submit]")
        page.wait_for_url("**/accounts/verify/**")
        page.click("#use-passkey")
        page.wait_for_url("**/roles/")
        assert AuditEvent.objects.filter(
            action="mfa.verified", actor_id=person.pk, details__method="passkey"
        ).exists()

        result = page.evaluate(API_PASSKEY_STEP_UP, raw)

    status, window = result["first"]
    assert status == 200, window
    assert window["open"] is True and window["factor"] == "passkey"
    # The challenge was single use: the same assertion again is refused.
    status, error = result["replay"]
    assert status == 400
    assert "expired or was already used" in error["error"]["fields"]["passkey"][0]
    assert ApiToken.objects.get(user=person).step_up_factor == "passkey"
    assert AuditEvent.objects.filter(action="api.step_up_opened", actor_id=person.pk).count() == 1
