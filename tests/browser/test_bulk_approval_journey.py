"""Issue 12 in a real browser, the approver's side: the inbox is paged and filtered; twenty
requests are approved with one reason and one code; a wrong code changes nothing; a request
decided meanwhile by someone else is reported on its own while the rest are decided; the
requester's own request cannot be approved by them. Screenshots go to PIM_TEST_SCREENSHOTS."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from activations.models import ActivationRequest
from activations.services import activation_deny, activation_request
from roles.services import role_settings_update
from tests.browser.test_my_roles_journey import CODE_STEP, shoot, sign_in
from tests.factories import EligibleAssignmentFactory, RoleFactory, UserFactory, totp_code, totp_device

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
Status = ActivationRequest.Status


def pending(person, role, now):
    return activation_request(
        requester=person,
        eligible=EligibleAssignmentFactory(user=person, role=role),
        duration=timedelta(hours=1),
        justification=f"Night shift of {person.username}",
        mfa_verified_at=now,
    )


def test_an_approver_approves_20_requests_with_one_code(new_page):
    approver = UserFactory(username="arne", display_name="Arne Approver")
    second = UserFactory(username="bea", display_name="Bea Second")
    device = totp_device(approver)
    role = RoleFactory(name="Vault Keeper")
    role_settings_update(
        actor=None, role=role, changes={"require_approval": True}, approvers=[approver, second]
    )
    page = new_page()

    with time_machine.travel(timezone.now(), tick=True) as clock:
        now = timezone.now()
        requests = [pending(UserFactory(username=f"night{n:02}"), role, now) for n in range(21)]
        page.goto("/activations/approvals/")
        sign_in(page, approver, device)
        page.wait_for_url("**/activations/approvals/")
        assert page.locator("#approvals tbody tr").count() == 21

        # Filtered to one requester, then back to all.
        page.select_option("select[name=requester]", "night03")
        page.click("#inbox-filters button[type=submit]")
        page.wait_for_url("**requester=night03**")
        assert page.locator("#approvals tbody tr").count() == 1
        page.goto("/activations/approvals/")

        # A wrong code changes nothing, and what was ticked stays ticked.
        clock.shift(timedelta(minutes=10))  # the sign-in's check is no longer fresh
        page.check("#select-all")
        page.fill("textarea[name=reason]", "Planned maintenance")
        page.fill("input[name=otp_token]", "000000")
        page.click("#bulk-approve")
        page.wait_for_load_state()
        assert "otp_token" in page.locator("#bulk-decision").inner_html()
        assert page.locator("input[name=requests]:checked").count() == 21
        assert not ActivationRequest.objects.exclude(status=Status.PENDING_APPROVAL).exists()
        shoot(page, "inbox-wrong-code")

        # Someone decides one of them meanwhile; the approver approves the page with one code.
        activation_deny(
            approver=second, request=requests[0], reason="Not tonight", mfa_verified_at=timezone.now()
        )
        clock.shift(CODE_STEP)
        page.fill("textarea[name=reason]", "Planned maintenance")
        page.fill("input[name=otp_token]", totp_code(device))
        page.set_default_timeout(90_000)  # twenty decisions, each with its audit event and emails
        page.click("#bulk-approve")
        page.wait_for_url("**/activations/approvals/")
        messages = page.locator("ul.messages").inner_text()
        assert "Approved: 20 requests." in messages
        assert (
            "Not decided: Vault Keeper for Night00 — This request was already denied by Bea Second"
            in messages
        )
        assert ActivationRequest.objects.filter(status=Status.GRANTED).count() == 20
        assert "Nothing is waiting for you." in page.locator("main").inner_text()
        shoot(page, "inbox-approved-20")


def test_the_inbox_at_390_px_and_a_requester_cannot_approve_their_own(new_page):
    requester = UserFactory(username="rita", display_name="Rita Requester")
    colleague = UserFactory(username="carl", display_name="Carl Colleague")
    device = totp_device(requester)
    role = RoleFactory(name="Vault Keeper")
    role_settings_update(
        actor=None, role=role, changes={"require_approval": True}, approvers=[requester, colleague]
    )
    page = new_page()

    with time_machine.travel(timezone.now(), tick=True):
        now = timezone.now()
        theirs = pending(colleague, role, now)
        own = pending(requester, role, now)
        page.goto("/activations/approvals/")
        sign_in(page, requester, device)
        page.wait_for_url("**/activations/approvals/")
        # Only the colleague's request waits for her: her own is not hers to decide.
        assert page.locator("#approvals tbody tr").count() == 1, page.locator("main").inner_text()
        shoot(page, "inbox-one")
        # Ticking her own by hand (a forged box) is refused, the colleague's approved.
        page.evaluate(
            """id => { const box = document.querySelector('input[name=requests]').cloneNode();
                       box.value = id; box.checked = true;
                       document.querySelector('#bulk-decision-form').appendChild(box); }""",
            str(own.pk),
        )
        page.check(f"input[value='{theirs.pk}']")
        page.click("#bulk-approve")
        page.wait_for_url("**/activations/approvals/")
        messages = page.locator("ul.messages").inner_text()
        assert "Approved: 1 request." in messages
        assert "You cannot decide your own request." in messages
        own.refresh_from_db()
        assert own.status == Status.PENDING_APPROVAL
