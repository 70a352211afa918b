"""The two-person rule in a real browser: a PIM Administrator loosens Global Administrator's
settings in the admin; the change waits. A second administrator gets the email over SMTP,
follows its link, confirms a fresh code and approves: the settings change. The first one cannot
approve their own change (the page offers no decision, and a forged POST is refused).

Screenshots of the approval page for the record: /tmp/twoperson-approval-desktop.png and
/tmp/twoperson-approval-390.png."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from audit.models import AuditEvent
from roles.models import PendingChange, Role, RoleSettings
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

GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"
CODE_STEP = timedelta(seconds=31)  # a TOTP code works once: the next check needs the next window
SCREENSHOTS = "/tmp/twoperson-approval-{}.png"  # noqa: S108 - for the lead to look at


def pim_administrator(username: str, name: str):
    user = UserFactory(username=username, display_name=name)
    ActiveAssignmentFactory(
        user=user,
        role=portal_role(PIM_ADMINISTRATOR),
        origin="activation",
        ends_at=timezone.now() + timedelta(hours=4),
    )
    return user, totp_device(user)


def sign_in(page, user, device):
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/accounts/verify/**")
    page.fill("input[name=otp_token]", totp_code(device))
    page.click("main button[type=submit]")


def test_a_loosening_waits_for_a_second_administrator_who_approves_from_the_email(new_page, smtp_server):
    role = Role.objects.get(template_id=GLOBAL_ADMIN)
    ada, ada_device = pim_administrator("ada", "Ada Admin")
    bea, bea_device = pim_administrator("bea", "Bea Second-Admin")
    first, second = new_page(), new_page()

    with time_machine.travel(timezone.now(), tick=True) as clock:
        # Bea is signed in already (her code check will be stale by the time she approves).
        second.goto("/roles/")
        sign_in(second, bea, bea_device)
        second.wait_for_url("**/roles/")

        # Ada turns off MFA and doubles the activation time of Global Administrator in the admin.
        settings_url = f"/admin/roles/rolesettings/{role.pk}/change/"
        first.goto(settings_url)
        clock.shift(CODE_STEP)
        sign_in(first, ada, ada_device)
        first.wait_for_url(f"**{settings_url}")
        assert "Two-person rule." in first.locator("#two-person-notice").inner_text()
        first.uncheck("#id_require_mfa")
        first.fill("#id_activation_max_duration", "16:00:00")
        first.click("input[name=_save]")
        first.wait_for_url(f"**{settings_url}")
        assert "Saved as a pending change: a second PIM Administrator must approve it." in first.content()
        settings = RoleSettings.objects.get(role=role)
        assert settings.require_mfa is True and settings.activation_max_duration == timedelta(hours=8)
        change = PendingChange.objects.get(role=role)

        # Ada cannot approve her own change: the page offers her no decision, a forged POST is refused.
        first.goto(f"/roles/changes/{change.pk}/")
        assert first.locator("#decision-form").count() == 0
        assert "You proposed this change" in first.locator("main").inner_text()
        token = first.locator("#cancel-form input[name=csrfmiddlewaretoken]").input_value()
        refused = first.request.post(
            f"/roles/changes/{change.pk}/decide/",
            form={"csrfmiddlewaretoken": token, "decision": "approve", "reason": "Trust me"},
        )
        assert "You proposed this change: a second PIM Administrator must approve it." in refused.text()
        change.refresh_from_db()
        assert change.status == PendingChange.Status.PENDING
        assert AuditEvent.objects.filter(
            action="pending_change.self_approval_refused", actor_id=ada.pk
        ).exists()

        # Bea's email arrives over SMTP, with the link to the approval page.
        message = smtp_server.wait_for(lambda m: m["To"] == bea.email)
        assert "Second approval needed" in message["Subject"]
        text, _html = message_parts(message)
        link = first_link(text)
        assert link.endswith(f"/roles/changes/{change.pk}/")
        assert not any(m["To"] == ada.email for m in smtp_server.messages)

        # Ten minutes later she follows it: a fresh code first, then the change field by field.
        clock.shift(timedelta(minutes=10))
        second.goto(link)
        second.wait_for_url("**/accounts/verify/**")
        second.fill("input[name=otp_token]", totp_code(bea_device))
        second.click("main button[type=submit]")
        second.wait_for_url(f"**/roles/changes/{change.pk}/")
        diff = second.locator("#change-diff").inner_text()
        assert "Require MFA on activation" in diff and "8 hours" in diff and "16 hours" in diff
        second.screenshot(path=SCREENSHOTS.format("desktop"), full_page=True)
        second.set_viewport_size({"width": 390, "height": 844})
        second.screenshot(path=SCREENSHOTS.format("390"), full_page=True)
        # The page's own content fits (the site-wide navigation bar is another matter).
        width = second.evaluate("document.querySelector('main').scrollWidth")
        assert width <= 390, f"the approval page scrolls sideways at 390 px ({width} px)"

        second.fill("#decision-form textarea[name=reason]", "Night shift cover, agreed by phone")
        second.click("#decision-form button[value=approve]")
        second.wait_for_load_state()
        assert "Approved and applied" in second.locator("main").inner_text()

    settings.refresh_from_db()
    assert settings.require_mfa is False and settings.activation_max_duration == timedelta(hours=16)
    change.refresh_from_db()
    assert (change.status, change.decided_by, change.proposer) == ("approved", bea, ada)
    applied = AuditEvent.objects.get(action="role_settings.changed", role_id=role.pk)
    assert applied.actor_id == bea.pk
    assert applied.details["two_person"]["proposed_by"] == ada.label
    assert applied.details["two_person"]["approved_by"] == bea.label
    smtp_server.wait_for(lambda m: m["To"] == ada.email and m["Subject"].startswith("Approved"))
