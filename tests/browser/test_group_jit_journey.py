"""Issue 14's PIM for Groups journey in a real browser, against the loopback Graph stub (real
msal, real HTTP): a person eligible for "Member of Payroll Admins" activates it in Chromium; the
outbox sends the group adminAssign request; the instance shows in Entra a little later (the
stub's delay), and the activation page says "Effective in Entra" once the worker's check saw
it; at the end the expiry job revokes it, the stub receives the adminRemove, the instance goes
and the removal's effect is confirmed (audit directory.revoke_effective).
Screenshots (desktop and 390 px) go to PIM_TEST_SCREENSHOTS."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from accounts.models import DirectoryGroup
from activations import jobs
from activations.models import ActivationRequest
from audit.models import AuditEvent
from entra import client
from entra.tests.conftest import ALICE, entra_settings, stub  # noqa: F401 - fixtures
from entra.tests.stub import StubSession
from roles.directory_services import directory_effects_check_due
from roles.models import DirectoryOperation
from roles.services import group_govern, role_settings_update
from tests.browser.a11y import PHONE
from tests.factories import PASSWORD, EligibleAssignmentFactory, UserFactory, totp_code, totp_device

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAYROLL = "93000000-0000-4000-8000-000000000003"
REQUESTS = "/v1.0/identityGovernance/privilegedAccess/group/assignmentScheduleRequests"
INSTANCES = "/v1.0/identityGovernance/privilegedAccess/group/assignmentScheduleInstances"
CODE_STEP = timedelta(seconds=31)


@pytest.fixture
def graph_stub(entra_settings, stub, monkeypatch):  # noqa: F811 - the imported fixtures
    """The process's Graph client (the live server runs in this process) reaches only the stub."""
    monkeypatch.setattr(client, "new_session", lambda: StubSession(stub))
    client.graph_install(client.GraphClient.from_settings())
    yield stub
    client.graph_install(None)


def sign_in(page, user, device):
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/accounts/verify/**")
    page.fill("input[name=otp_token]", totp_code(device))
    page.click("main button[type=submit]")


def directory_state(page) -> tuple[str, str]:
    row = page.locator("#directory-status")
    return row.get_attribute("data-state"), row.inner_text()


def test_group_jit_membership_from_activation_to_confirmed_removal(graph_stub, new_page, screenshot):
    tenant = graph_stub
    tenant.apply_after_reads = 2  # Entra shows an accepted request at the second read after it
    alice = UserFactory(username="alice@contoso.example", display_name="Alice Example", external_id=ALICE)
    device = totp_device(alice)
    group = DirectoryGroup.objects.create(name="Payroll Admins", external_id=PAYROLL)
    member, _owner = group_govern(actor=None, group=group)
    role_settings_update(actor=None, role=member, changes={"activation_max_duration": timedelta(hours=2)})
    EligibleAssignmentFactory(user=alice, role=member)
    page = new_page()

    with time_machine.travel(timezone.now(), tick=True) as clock:
        # Alice sees the group's membership among her eligible roles and activates it.
        page.goto("/roles/")
        sign_in(page, alice, device)
        page.wait_for_url("**/roles/")
        row = page.locator("tr[data-role='Member of Payroll Admins']")
        assert "Member" in row.inner_text()
        row.locator("a.activate").click()
        page.select_option("select[name=duration]", "60")
        page.fill("textarea[name=justification]", "Payroll run for November")
        clock.shift(CODE_STEP)
        page.fill("input[name=otp_token]", totp_code(device))
        page.click("#activate-form button[type=submit]")
        page.wait_for_url("**/activations/requests/*/")
        request = ActivationRequest.objects.get(requester=alice)
        assert request.status == ActivationRequest.Status.GRANTED

        # The outbox sent the group assignment request (after commit, by the eager task).
        [assign] = tenant.requests_to("POST", REQUESTS)
        assert assign.status == 201
        assert (assign.body["action"], assign.body["accessId"]) == ("adminAssign", "member")
        assert (assign.body["principalId"], assign.body["groupId"]) == (ALICE, PAYROLL)
        assert "Payroll run for November" in assign.body["justification"]
        assert tenant.group_pim.assignments == []  # accepted, not yet applied
        page.reload()
        state, text = directory_state(page)
        assert state == "waiting" and "Waiting for Entra" in text

        # The worker looks at the instances: not there at first, then there.
        clock.shift(timedelta(seconds=5))
        directory_effects_check_due()
        assert tenant.group_pim.assignments == []
        clock.shift(timedelta(seconds=10))
        directory_effects_check_due()
        [instance] = tenant.group_pim.assignments
        assert (instance["principalId"], instance["groupId"], instance["accessId"]) == (
            ALICE,
            PAYROLL,
            "member",
        )
        reads = tenant.requests_to("GET", INSTANCES)
        assert len(reads) == 2 and all(f"groupId eq '{PAYROLL}'" in r.query["$filter"] for r in reads)
        page.reload()
        state, text = directory_state(page)
        assert state == "effective" and "Effective in Entra at" in text
        screenshot(page, "effective")
        page.set_viewport_size(PHONE)
        screenshot(page, "effective-390")
        width = page.evaluate("document.querySelector('main').scrollWidth")
        assert width <= PHONE["width"], f"the page scrolls sideways at 390 px ({width} px)"
        page.set_viewport_size({"width": 1280, "height": 900})

        # My roles shows the group membership active.
        page.goto("/roles/?tab=active")
        assert "Member of Payroll Admins" in page.locator("section#active").inner_text()

        # At the end the expiry job ends it and the outbox removes it from the group.
        request.refresh_from_db()
        clock.move_to(request.ends_at + timedelta(seconds=1))
        assert jobs.activation_expire_due() == 1
        removes = [r for r in tenant.requests_to("POST", REQUESTS) if r.body["action"] == "adminRemove"]
        assert len(removes) == 1 and removes[0].status == 201
        assert (removes[0].body["accessId"], removes[0].body["groupId"]) == ("member", PAYROLL)
        assert len(tenant.group_pim.assignments) == 1  # accepted, not yet applied

        revoke = DirectoryOperation.objects.get(operation="revoke")
        assert revoke.status == "done" and revoke.effect == "waiting"
        clock.shift(timedelta(seconds=5))
        directory_effects_check_due()
        clock.shift(timedelta(seconds=10))
        directory_effects_check_due()
        assert tenant.group_pim.assignments == []
        confirmed = AuditEvent.objects.get(action="directory.revoke_effective")
        assert confirmed.target_id == str(request.active_assignment_id)
        assert "effective_at" in confirmed.details

        page.goto(f"/activations/requests/{request.pk}/")
        state, text = directory_state(page)
        assert state == "effective" and "Removed in Entra at" in text
        page.goto("/roles/?tab=active")
        assert "Member of Payroll Admins" not in page.locator("main").inner_text()
