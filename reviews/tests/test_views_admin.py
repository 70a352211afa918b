"""The reviews admin in the portal: PIM Administrators manage definitions and runs; PIM
Auditors read them; everyone else gets 404."""

from datetime import timedelta

import pytest
import time_machine
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from reviews import services
from reviews.models import ReviewDefinition, ReviewInstance, ReviewItem
from roles.models import EligibleAssignment
from tests.factories import EligibleAssignmentFactory, RoleFactory, UserFactory

from .helpers import (
    ESCAPED_XSS,
    XSS,
    definition_create,
    global_administrator,
    messages_of,
    page,
    signed_in,
    start,
)

pytestmark = pytest.mark.django_db

LIST = reverse("reviews:definition_list")
NEW = reverse("reviews:definition_create")


@pytest.fixture
def role():
    return RoleFactory(name="Payroll Administrator")


@pytest.fixture
def run(role, reviewer):
    for n in range(3):
        EligibleAssignmentFactory(user=UserFactory(username=f"report{n}", manager=reviewer), role=role)
    return start(definition_create(roles=[role], name="Payroll quarterly", auto_apply=False))


def form_data(selected_roles, **overrides) -> dict:
    """The definition form as a browser posts it (unchecked boxes are simply absent)."""
    data = {
        "name": "Global Administrators, quarterly",
        "description": "Who still needs Global Administrator?",
        "roles": [str(role.pk) for role in selected_roles],
        "review_eligible": "on",
        "reviewer_type": "manager",
        "named_reviewers": "",
        "fallback_reviewer": "",
        "recurrence": "quarterly",
        "start_date": timezone.now().date().isoformat(),
        "duration_days": "14",
        "justification_required": "on",
        "reminders": "on",
        "recommendations": "on",
        "inactivity_days": "30",
        "default_decision": "no_change",
        "auto_apply": "on",
        "enabled": "on",
    }
    data.update(overrides)
    return {key: value for key, value in data.items() if value is not None}


def admin_urls(run) -> list[str]:
    definition = run.definition_id
    return [
        LIST,
        NEW,
        reverse("reviews:definition_detail", args=[definition]),
        reverse("reviews:definition_edit", args=[definition]),
        reverse("reviews:instance_detail", args=[run.pk]),
        reverse("reviews:report_csv", args=[run.pk]),
        reverse("reviews:report_xlsx", args=[run.pk]),
    ]


# --- Who gets in ---------------------------------------------------------------------------


@pytest.mark.parametrize("persona", ["outsider", "reviewer", "requester"])
def test_people_without_a_portal_role_get_404_everywhere_in_the_reviews_admin(persona, run, request):
    client = signed_in_as(request, persona)
    for url in admin_urls(run):
        assert client.get(url).status_code == 404, url
    for url in (
        NEW,
        reverse("reviews:definition_edit", args=[run.definition_id]),
        reverse("reviews:instance_end", args=[run.pk]),
        reverse("reviews:instance_apply", args=[run.pk]),
    ):
        assert client.post(url, form_data([global_administrator()])).status_code == 404, url
    run.refresh_from_db()
    assert run.status == ReviewInstance.Status.ACTIVE
    assert ReviewDefinition.objects.count() == 1


def signed_in_as(request, persona):
    return signed_in(request.getfixturevalue(persona))


def test_an_administrator_whose_role_expired_gets_404(run, admin, verified_client):
    client = verified_client(admin)
    with time_machine.travel(timezone.now() + timedelta(hours=5), tick=False):
        assert client.get(LIST).status_code == 404  # the PIM Administrator activation has ended


def test_the_auditor_reads_definitions_runs_and_reports_but_changes_nothing(run, auditor, verified_client):
    client = verified_client(auditor)
    html = page(client.get(LIST))
    assert "Payroll quarterly" in html and "New access review" not in html
    html = page(client.get(reverse("reviews:definition_detail", args=[run.definition_id])))
    assert reverse("reviews:report_csv", args=[run.pk]) in html and ">Edit<" not in html
    html = page(client.get(reverse("reviews:instance_detail", args=[run.pk])))
    assert "Download CSV" in html and "End now" not in html and "Apply results" not in html
    assert client.get(NEW).status_code == 404
    assert client.get(reverse("reviews:definition_edit", args=[run.definition_id])).status_code == 404
    assert client.post(reverse("reviews:instance_end", args=[run.pk])).status_code == 404
    run.refresh_from_db()
    assert run.status == ReviewInstance.Status.ACTIVE


# --- Definitions ---------------------------------------------------------------------------


def test_an_administrator_creates_a_review_with_every_setting_through_the_form(
    admin, reviewer, verified_client
):
    client = verified_client(admin)
    assert "New access review" in page(client.get(LIST))
    assert 'name="roles"' in page(client.get(NEW))
    ga, user_admin = global_administrator(), RoleFactory(name="Ledger Administrator")
    data = form_data(
        [ga, user_admin],
        reviewer_type="named",
        named_reviewers=f"{reviewer.username}\n{admin.username}",
        fallback_reviewer=reviewer.username,
        review_active="on",
        recurrence="monthly",
        duration_days="10",
        justification_required=None,
        reminders=None,
        inactivity_days="45",
        default_decision="recommendation",
        auto_apply=None,
    )
    response = client.post(NEW, data)
    definition = ReviewDefinition.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("reviews:definition_detail", args=[definition.pk])
    assert set(definition.roles.all()) == {ga, user_admin}
    assert set(definition.named_reviewers.all()) == {reviewer, admin}
    assert definition.fallback_reviewer == reviewer and definition.created_by == admin
    assert (definition.review_eligible, definition.review_active) == (True, True)
    assert (definition.recurrence, definition.duration_days, definition.inactivity_days) == (
        "monthly",
        10,
        45,
    )
    assert not definition.justification_required and not definition.reminders and not definition.auto_apply
    assert definition.recommendations and definition.default_decision == "recommendation"
    event = AuditEvent.objects.get(action="review_definition.created")
    assert event.actor == admin and event.details["after"]["recurrence"] == "monthly"
    html = page(client.get(response["Location"]))
    assert "Access review Global Administrators, quarterly created." in html
    assert "No run yet." in html


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"roles": []}, "roles", "This field is required."),
        (
            {"review_eligible": None},
            "review_eligible",
            "Review eligible assignments, active assignments or both.",
        ),
        ({"reviewer_type": "named"}, "named_reviewers", "Name at least one reviewer."),
        ({"named_reviewers": "nobody-here"}, "named_reviewers", "No active user named nobody-here."),
        ({"fallback_reviewer": "a b"}, "fallback_reviewer", "No active user named a, b."),
        ({"duration_days": "0"}, "duration_days", "greater than or equal to 1"),
        ({"duration_days": "-5"}, "duration_days", "greater than or equal to 1"),
        ({"inactivity_days": "9999"}, "inactivity_days", "less than or equal to 365"),
        ({"recurrence": "hourly"}, "recurrence", "Select a valid choice."),
        ({"start_date": "31/02/2026"}, "start_date", "Enter a valid date."),
        ({"name": "bad\x00name"}, "name", "Null characters are not allowed."),
        ({"name": "bad\x07name"}, "name", "The name contains control characters."),
        ({"name": "x" * 201}, "name", "at most 200 characters"),
    ],
)
def test_bad_definition_input_is_refused_with_a_clear_message(
    admin, verified_client, overrides, field, message
):
    client = verified_client(admin)
    response = client.post(NEW, form_data([global_administrator()], **overrides))
    assert response.status_code == 200
    errors = " ".join(response.context["form"].errors.get(field, []))
    assert message in errors, response.context["form"].errors
    assert not ReviewDefinition.objects.exists()


def test_extra_fields_cannot_set_who_created_a_review(admin, outsider, verified_client):
    client = verified_client(admin)
    client.post(NEW, form_data([global_administrator()], created_by=str(outsider.pk), id="1"))
    assert ReviewDefinition.objects.get().created_by == admin


def test_an_administrator_edits_a_review_and_the_change_is_audited(run, admin, verified_client):
    client = verified_client(admin)
    url = reverse("reviews:definition_edit", args=[run.definition_id])
    html = page(client.get(url))
    assert 'value="Payroll quarterly"' in html
    definition = run.definition
    data = form_data(list(definition.roles.all()), name="Payroll semi-annual", recurrence="semiannually")
    response = client.post(url, data)
    assert response.status_code == 302
    definition.refresh_from_db()
    assert (definition.name, definition.recurrence) == ("Payroll semi-annual", "semiannually")
    changes = AuditEvent.objects.get(action="review_definition.changed").details["changes"]
    assert changes["recurrence"] == {"before": "quarterly", "after": "semiannually"}


def test_the_list_shows_each_reviews_last_run_and_its_progress(run, admin, reviewer, verified_client):
    first = run.items.first()
    services.review_item_decide(reviewer=reviewer, item=first, decision="approve", justification="ok")
    definition_create(
        roles=[global_administrator()],
        name="Not started yet",
        start_date=timezone.now().date() + timedelta(days=5),
    )
    html = page(verified_client(admin).get(LIST))
    assert f'href="{reverse("reviews:instance_detail", args=[run.pk])}"' in html
    assert '<progress value="1" max="3"' in html and "1 of 3 decided (33%)" in html
    assert "Not run yet" in html


# --- Runs ----------------------------------------------------------------------------------


def test_the_run_page_shows_progress_items_and_filters_by_decision(run, admin, reviewer, verified_client):
    denied = run.items.get(user__username="report0")
    services.review_item_decide(reviewer=reviewer, item=denied, decision="deny", justification="Left")
    client = verified_client(admin)
    url = reverse("reviews:instance_detail", args=[run.pk])
    html = page(client.get(url))
    assert f'<progress value="1" max="3" id="progress-{run.pk}"' in html
    assert html.count('data-item="') == 3 and "Rene Reviewer &lt;reviewer&gt;" in html
    html = page(client.get(url, {"decision": "deny"}))
    assert html.count('data-item="') == 1 and f'id="item-{denied.pk}"' in html
    assert page(client.get(url, {"decision": "undecided"})).count('data-item="') == 2
    assert "End now" in html and "Apply results" not in html


def test_end_now_then_apply_results_removes_denied_access(run, admin, reviewer, verified_client):
    denied = run.items.get(user__username="report0")
    services.review_item_decide(reviewer=reviewer, item=denied, decision="deny", justification="Left")
    client = verified_client(admin)
    response = client.post(reverse("reviews:instance_end", args=[run.pk]))
    assert response.status_code == 302
    html = page(client.get(response["Location"]))
    assert "The review has ended. Apply the results when you are ready." in html
    assert "Apply results" in html and "End now" not in html
    assert EligibleAssignment.objects.get(pk=denied.eligible_id).ended_at is None

    response = client.post(reverse("reviews:instance_apply", args=[run.pk]))
    assert "Results applied (removed: 1, no change: 2)." in messages_of(client.get(response["Location"]))
    assert EligibleAssignment.objects.get(pk=denied.eligible_id).end_reason == "review"
    assert ReviewItem.objects.get(pk=denied.pk).outcome == "removed"
    response = client.post(reverse("reviews:instance_apply", args=[run.pk]))
    assert "The results were already applied." in messages_of(client.get(response["Location"]))
    response = client.post(reverse("reviews:instance_end", args=[run.pk]))
    assert "This review is not running." in messages_of(client.get(response["Location"]))


def test_end_now_applies_at_once_when_the_review_applies_automatically(run, admin, verified_client):
    ReviewDefinition.objects.filter(pk=run.definition_id).update(auto_apply=True)
    client = verified_client(admin)
    response = client.post(reverse("reviews:instance_end", args=[run.pk]))
    assert "The review has ended and its results were applied." in messages_of(
        client.get(response["Location"])
    )
    run.refresh_from_db()
    assert run.status == ReviewInstance.Status.APPLIED


def test_ending_or_applying_needs_a_fresh_authenticator_code(run, admin, verified_client):
    client = verified_client(admin)
    with time_machine.travel(timezone.now() + timedelta(minutes=30), tick=False):
        response = client.post(reverse("reviews:instance_end", args=[run.pk]))
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:verify"))
    run.refresh_from_db()
    assert run.status == ReviewInstance.Status.ACTIVE


def test_applying_a_running_review_is_refused(run, admin, verified_client):
    client = verified_client(admin)
    response = client.post(reverse("reviews:instance_apply", args=[run.pk]))
    assert "End the review before applying it." in messages_of(client.get(response["Location"]))


def test_opening_end_or_apply_urls_changes_nothing(run, admin, verified_client):
    client = verified_client(admin)
    for name in ("reviews:instance_end", "reviews:instance_apply"):
        response = client.get(reverse(name, args=[run.pk]))
        assert response["Location"] == reverse("reviews:instance_detail", args=[run.pk])
    run.refresh_from_db()
    assert run.status == ReviewInstance.Status.ACTIVE


def test_admin_pages_escape_user_text(role, admin, reviewer, verified_client):
    EligibleAssignmentFactory(user=UserFactory(username="x", display_name=XSS, manager=reviewer), role=role)
    run = start(definition_create(roles=[role], name=XSS, description=XSS))
    services.review_item_decide(reviewer=reviewer, item=run.items.get(), decision="deny", justification=XSS)
    client = verified_client(admin)
    for url in (
        LIST,
        reverse("reviews:definition_detail", args=[run.definition_id]),
        reverse("reviews:instance_detail", args=[run.pk]),
        reverse("reviews:definition_edit", args=[run.definition_id]),
    ):
        html = page(client.get(url))
        assert XSS not in html and ESCAPED_XSS in html, url


# --- Fresh step-up for administrative changes ------------------------------------------------


def test_a_stale_session_must_confirm_a_code_before_creating_or_editing_a_review(
    admin, reviewer, verified_client, time_machine
):
    client = verified_client(admin)
    response = client.post(NEW, form_data([global_administrator()], fallback_reviewer=reviewer.username))
    definition = ReviewDefinition.objects.get()
    assert response.status_code == 302
    edit = reverse("reviews:definition_edit", args=[definition.pk])
    time_machine.move_to(timezone.now() + timedelta(hours=1), tick=False)
    events = AuditEvent.objects.count()

    created = client.post(NEW, form_data([global_administrator()], fallback_reviewer=reviewer.username))
    edited = client.post(
        edit, form_data([global_administrator()], fallback_reviewer=reviewer.username, name="Renamed")
    )

    for response in (created, edited):
        assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:verify"))
    assert ReviewDefinition.objects.count() == 1
    definition.refresh_from_db()
    assert definition.name != "Renamed"
    assert AuditEvent.objects.count() == events


def test_an_outsider_with_a_stale_session_still_gets_404_not_a_code_prompt(
    outsider, verified_client, time_machine
):
    client = verified_client(outsider)
    time_machine.move_to(timezone.now() + timedelta(hours=1), tick=False)
    assert client.get(NEW).status_code == 404
