"""The reviewer's journey in a real browser: a manager gets the review email over SMTP, opens
My reviews, keeps one person, denies another with a reason; at the end the denied
eligibility is gone."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from reviews import services as reviews
from reviews.models import ReviewItem
from roles.models import EligibleAssignment, Role
from tests.browser.conftest import message_parts
from tests.factories import PASSWORD, EligibleAssignmentFactory, UserFactory, totp_code, totp_device

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"


def test_manager_reviews_global_administrators_and_the_denied_one_loses_the_role(new_page, smtp_server):
    role = Role.objects.get(template_id=GLOBAL_ADMIN)
    manager = UserFactory(username="mona", display_name="Mona Manager")
    keeper = UserFactory(username="kim", display_name="Kim Keeper", manager=manager)
    leaver = UserFactory(username="lee", display_name="Lee Leaver", manager=manager)
    for person in (keeper, leaver):
        EligibleAssignmentFactory(user=person, role=role, ends_at=timezone.now() + timedelta(days=200))
    device = totp_device(manager)
    reviews.review_definition_create(
        actor=None,
        roles=[role],
        name="Global Administrators <quarterly>",
        reviewer_type="manager",
        recurrence="quarterly",
        start_date=timezone.now().date(),
        duration_days=7,
    )
    with time_machine.travel(timezone.now(), tick=True) as clock:
        [instance] = reviews.review_instances_start_due()
        message = smtp_server.wait_for(lambda m: m["To"] == manager.email)
        text, html = message_parts(message)
        assert "<quarterly>" not in html and "/reviews/mine/" in text

        page = new_page()
        page.goto("/reviews/mine/")
        page.fill("input[name=username]", manager.username)
        page.fill("input[name=password]", PASSWORD)
        page.click("main button[type=submit]")
        page.fill("input[name=otp_token]", totp_code(device))
        page.click("main button[type=submit]")
        page.wait_for_url("**/reviews/mine/")
        assert "0 of 2 decided" in page.locator("article.review-progress").inner_text()

        items = {item.user.username: item for item in ReviewItem.objects.select_related("user")}
        keep_row = page.locator(f"#item-{items['kim'].pk}")
        keep_row.locator("input[name=justification]").fill("Runs the tenant")
        keep_row.locator("button[name=decision][value=approve]").click()
        page.wait_for_load_state()
        deny_row = page.locator(f"#item-{items['lee'].pk}")
        deny_row.locator("input[name=justification]").fill("Moved to finance")
        deny_row.locator("button[name=decision][value=deny]").click()
        page.wait_for_load_state()
        assert "2 of 2 decided" in page.locator("article.review-progress").inner_text()

        clock.move_to(instance.ends_at + timedelta(minutes=1))
        reviews.review_instances_close_due()

    leaver_eligibility = EligibleAssignment.objects.get(user=leaver, role=role)
    assert leaver_eligibility.end_reason == "review"
    assert EligibleAssignment.objects.get(user=keeper, role=role).ended_at is None
    removed = smtp_server.wait_for(lambda m: m["To"] == leaver.email)
    assert "removed" in removed["Subject"].lower()
