"""A reviewer accepts the recommendations in a real browser: the manager opens My reviews, sees
each person's use at the review's start beside their use now, marks one "Don't know", takes
another decision back, then accepts the recommendations for the rest. The accepted items are
decided (audited as accepted recommendations), the one already decided stays. At the end the
owner gets the report by email (real SMTP on loopback) with the XLSX attached.

Screenshots (desktop and 390 px) land in PIM_TEST_SCREENSHOTS (default /tmp/pim-screenshots)."""

import io
from datetime import timedelta

import openpyxl
import pytest
import time_machine
from django.utils import timezone

from audit.models import AuditEvent
from reviews import services as reviews
from reviews.models import ReviewItem
from roles.models import EligibleAssignment
from tests.browser.a11y import PHONE, axe_violations, describe, scroll_width
from tests.factories import (
    PASSWORD,
    EligibleAssignmentFactory,
    RoleFactory,
    UserFactory,
    totp_code,
    totp_device,
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_reviewer_accepts_recommendations_and_the_owner_gets_the_report(new_page, smtp_server, screenshot):
    role = RoleFactory(name="Payroll Administrator")
    owner = UserFactory(username="olga", display_name="Olga Owner")
    manager = UserFactory(username="mona", display_name="Mona Manager")
    people = {
        name: UserFactory(username=name, display_name=display, manager=manager)
        for name, display in (
            ("kim", "Kim Keeper"),
            ("lee", "Lee Leaver"),
            ("max", "Max Maybe"),
            ("sam", "Sam Stale"),
        )
    }
    for person in people.values():
        EligibleAssignmentFactory(
            user=person,
            role=role,
            starts_at=timezone.now() - timedelta(days=60),
            ends_at=timezone.now() + timedelta(days=200),
        )
    device = totp_device(manager)
    definition = reviews.review_definition_create(
        actor=None,
        roles=[role],
        owners=[owner],
        name="Payroll administrators, quarterly",
        reviewer_type="manager",
        recurrence="quarterly",
        start_date=timezone.now().date(),
        duration_days=14,
        justification_required=True,
        default_decision="no_change",
    )
    with time_machine.travel(timezone.now(), tick=True) as clock:
        [run] = reviews.review_instances_start_due()
        items = {item.user.username: item for item in ReviewItem.objects.select_related("user")}
        assert {item.recommendation for item in items.values()} == {"deny"}  # nobody activated it

        # Kim signs in a few minutes after the review started: the snapshot says never, now says today.
        clock.shift(timedelta(minutes=5))
        people["kim"].last_sign_in_at = timezone.now()
        people["kim"].save(update_fields=["last_sign_in_at"])

        page = new_page()
        page.goto("/reviews/mine/")
        page.fill("input[name=username]", manager.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("main button[type=submit]")
        page.fill("input[name=otp_token]", totp_code(device))
        page.click("main button[type=submit]")
        page.wait_for_url("**/reviews/mine/")
        kim_row = page.locator(f"#item-{items['kim'].pk}")
        assert "Signed in: never" in kim_row.locator(".usage-snapshot").inner_text()
        assert f"Signed in: {timezone.now():%Y-%m-%d}" in kim_row.locator(".usage-live").inner_text()
        assert "At the review's start" in kim_row.inner_text() and "Now" in kim_row.inner_text()

        # Kim keeps the role (approved by hand); Max: don't know; Lee: denied, then taken back.
        kim_row.locator("input[name=justification]").fill("Signed in today, runs payroll")
        kim_row.locator("button[name=decision][value=approve]").click()
        page.wait_for_load_state()
        max_row = page.locator(f"#item-{items['max'].pk}")
        max_row.locator("input[name=justification]").fill("New joiner, asking HR")
        max_row.locator("button[name=decision][value=dont_know]").click()
        page.wait_for_load_state()
        lee_row = page.locator(f"#item-{items['lee'].pk}")
        lee_row.locator("input[name=justification]").fill("Moved to finance?")
        lee_row.locator("button[name=decision][value=deny]").click()
        page.wait_for_load_state()
        page.locator(f"#item-{items['lee'].pk} .reset-item button").click()
        page.wait_for_load_state()
        assert "Decision reset" in page.locator("ul.messages").inner_text()
        assert page.locator(f"#item-{items['lee'].pk}").get_attribute("data-decision") == "none"
        assert (
            "2 undecided items have a recommendation" in page.locator("#accept-recommendations").inner_text()
        )
        screenshot(page, "before-desktop")

        page.click("#accept-recommendations-button")
        page.wait_for_load_state()
        assert "Recommendations accepted: 2 items." in page.locator("ul.messages").inner_text()
        assert "4 of 4 decided" in page.locator("article.review-progress").inner_text()
        decisions = {
            name: page.locator(f"#item-{item.pk}").get_attribute("data-decision")
            for name, item in items.items()
        }
        assert decisions == {"kim": "approve", "lee": "deny", "max": "dont_know", "sam": "deny"}
        assert "Recommendation accepted" in page.locator(f"#item-{items['sam'].pk}").inner_text()
        screenshot(page, "after-desktop")
        page.set_viewport_size(PHONE)
        screenshot(page, "after-390")
        assert scroll_width(page) <= PHONE["width"]
        violations = axe_violations(page)
        assert not violations, describe(violations)

        accepted = AuditEvent.objects.filter(action="review.recommendation_accepted")
        assert sorted(event.details["principal"] for event in accepted) == [
            people["lee"].label,
            people["sam"].label,
        ]
        assert all(event.actor_id == manager.pk for event in accepted)

        # The run ends: the denials are removed, Max keeps access ("don't know"), the owner is told.
        clock.move_to(run.ends_at + timedelta(minutes=1))
        reviews.review_instances_close_due()

    ended = {e.user.username for e in EligibleAssignment.objects.filter(role=role, end_reason="review")}
    assert ended == {"lee", "sam"}
    message = smtp_server.wait_for(lambda m: m["To"] == owner.email)
    assert "Payroll administrators, quarterly" in message["Subject"]
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename().endswith(".xlsx")
    sheet = openpyxl.load_workbook(io.BytesIO(attachment.get_content())).active
    header = [cell.value for cell in sheet[1]]
    outcomes = {row[0]: row[header.index("Outcome")] for row in sheet.iter_rows(min_row=2, values_only=True)}
    assert outcomes[people["max"].label] == "No change" and outcomes[people["sam"].label] == "Removed"
    assert sheet.freeze_panes == "A2" and definition.pk
