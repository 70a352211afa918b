"""Every main page, as each persona sees it, at a phone's 390 px: no sideways scrolling
(document.scrollingElement.scrollWidth <= 390), no serious or critical axe-core violation, and
a screenshot for the record. Then the pieces every page gets from base.html: the skip link,
the navigation folding under "Menu", focus on the first error after a refused form.

To cover a new page, add its address to MAIN_PAGES (with {placeholders} from `portal_data`)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from activations.services import activation_request
from alerts.models import Alert
from alerts.services import alerts_evaluate
from audit.models import AuditEvent
from reviews import services as reviews
from roles.services import role_settings_update
from tests.browser.a11y import PHONE, axe_violations, describe, scroll_width
from tests.factories import PASSWORD, EligibleAssignmentFactory, RoleFactory, totp_code, totp_device

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# persona -> the pages they use. None: signed out.
MAIN_PAGES: dict[str | None, list[str]] = {
    None: ["/accounts/login/"],
    "requester": [
        "/roles/",
        "/activations/activate/{eligible}/",
        "/activations/requests/",
        "/activations/requests/{request}/",
        "/accounts/mfa/",
        "/api/tokens/",
    ],
    "approver": ["/activations/approvals/", "/activations/requests/{request}/"],
    "reviewer": ["/reviews/mine/"],
    "admin": [
        "/reviews/",
        "/reviews/new/",
        "/reviews/{definition}/",
        "/reviews/{definition}/edit/",
        "/reviews/runs/{run}/",
        "/audit/alerts/",
        "/audit/alerts/{alert}/",
        "/audit/dashboard/",
        "/audit/",
        "/audit/events/{event}/",
        "/roles/{role}/",
        "/roles/changes/",
        "/manage/roles/",
        "/manage/roles/{role}/",
        "/manage/roles/{role}/settings/",
        "/manage/roles/{role}/eligible/new/",
        "/manage/people/",
    ],
    "auditor": [
        "/audit/",
        "/audit/alerts/",
        "/audit/dashboard/",
        "/reviews/",
        "/reviews/runs/{run}/",
        "/audit/activations/{request}/",
    ],
}


@pytest.fixture
def portal_data(requester, approver, reviewer, admin, auditor):
    """Something on every page: a role needing approval with a pending request, a running
    review of it, evaluated alerts and audit events."""
    role = RoleFactory(name="Payroll Administrator — EMEA payroll and benefits")
    role_settings_update(
        actor=None,
        role=role,
        changes={"require_approval": True, "activation_max_duration": timedelta(hours=2)},
        approvers=[approver],
    )
    eligible = EligibleAssignmentFactory(
        user=requester, role=role, ends_at=timezone.now() + timedelta(days=90)
    )
    request = activation_request(
        requester=requester,
        eligible=eligible,
        duration=timedelta(hours=1),
        justification="Month-end payroll run for the EMEA subsidiaries",
        mfa_verified_at=timezone.now(),
    )
    requester.manager = reviewer
    requester.save()
    definition = reviews.review_definition_create(
        actor=admin,
        roles=[role],
        name="Quarterly review of payroll administrators",
        reviewer_type="manager",
        recurrence="quarterly",
        start_date=timezone.now().date(),
        duration_days=14,
        justification_required=False,
    )
    [run] = reviews.review_instances_start_due()
    alerts_evaluate()
    return {
        "role": role.pk,
        "eligible": eligible.pk,
        "request": request.pk,
        "definition": definition.pk,
        "run": run.pk,
        "alert": Alert.objects.order_by("pk").values_list("pk", flat=True).first(),
        "event": AuditEvent.objects.order_by("-seq").values_list("seq", flat=True).first(),
    }


def sign_in(page, user) -> None:
    device = totp_device(user)
    page.goto("/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url("**/accounts/verify/**")
    page.fill("input[name=otp_token]", totp_code(device))
    page.click("main button[type=submit]")
    page.wait_for_load_state()
    assert "/accounts/" not in page.url, page.url


def walk(page, persona: str, urls: list[str], data: dict, screenshot) -> list[str]:
    """Open each page at 390 px: what is wrong with each, as readable lines."""
    problems = []
    page.set_viewport_size(PHONE)
    for template in urls:
        url = template.format(**data)
        response = page.goto(url)
        assert response is not None and response.status == 200, (
            f"{persona} {url}: {response and response.status}"
        )
        slug = template.strip("/").replace("/", "_").replace("{", "").replace("}", "")
        screenshot(page, f"390-{persona}-{slug}")
        width = scroll_width(page)
        if width > PHONE["width"]:
            problems.append(f"{persona} {url}: scrolls sideways at 390 px ({width} px wide)")
        violations = axe_violations(page)
        if violations:
            problems.append(f"{persona} {url}:\n{describe(violations)}")
    return problems


@pytest.mark.parametrize("persona", list(MAIN_PAGES))
def test_every_main_page_fits_390_px_and_has_no_serious_axe_violation(
    persona, portal_data, new_page, screenshot, request
):
    page = new_page()
    if persona is not None:
        sign_in(page, request.getfixturevalue(persona))
    problems = walk(page, str(persona), MAIN_PAGES[persona], portal_data, screenshot)
    assert not problems, "\n".join(problems)


def test_the_skip_link_is_the_first_stop_and_moves_to_the_content(requester, new_page):
    page = new_page()
    sign_in(page, requester)
    page.goto("/roles/")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent.trim()")
    assert focused == "Skip to main content"
    assert page.locator(".skip-link").is_visible()  # shown when focused
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


def test_the_navigation_folds_under_menu_at_390_px(requester, new_page, screenshot):
    page = new_page()
    sign_in(page, requester)
    page.set_viewport_size(PHONE)
    page.goto("/roles/")
    links = page.locator("#nav-links")
    assert not links.is_visible()
    assert page.locator("label[for=nav-toggle]").is_visible()
    page.click("label[for=nav-toggle]")
    assert links.is_visible() and page.locator("#nav-reviews").is_visible()
    screenshot(page, "menu-open")
    assert scroll_width(page) <= PHONE["width"]
    page.set_viewport_size({"width": 1280, "height": 900})
    page.click("label[for=nav-toggle]") if page.locator("label[for=nav-toggle]").is_visible() else None
    assert page.locator("#nav-reviews").is_visible()  # wide screens: always shown


def test_tables_stack_into_labelled_rows_at_390_px(portal_data, reviewer, new_page):
    page = new_page()
    sign_in(page, reviewer)
    page.set_viewport_size(PHONE)
    page.goto("/reviews/mine/")
    cell = page.locator("#review-items tbody tr[data-item] td.principal")
    assert cell.get_attribute("data-label") == "Principal"
    assert (
        page.evaluate("getComputedStyle(document.querySelector('#review-items tr[data-item]')).display")
        == "block"
    )


def test_focus_moves_to_the_first_error_after_a_refused_form(portal_data, admin, new_page):
    page = new_page()
    sign_in(page, admin)
    page.goto("/reviews/new/")
    page.fill("input[name=name]", "")
    page.click("#save-review")
    page.wait_for_load_state()
    assert page.locator(".field-errors").count() >= 1
    focused = page.evaluate(
        "[document.activeElement.name, document.activeElement.getAttribute('aria-invalid')]"
    )
    assert focused == ["name", "true"]


def test_focus_moves_to_the_error_message_after_a_refused_decision(portal_data, reviewer, new_page):
    page = new_page()
    sign_in(page, reviewer)
    page.goto("/reviews/mine/")
    page.click("#approve-selected")  # nothing selected: refused
    page.wait_for_load_state()
    assert page.evaluate("document.activeElement.classList.contains('error')")
    assert "Choose at least one item" in page.evaluate("document.activeElement.textContent")
