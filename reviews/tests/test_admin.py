"""Access reviews in the Django admin: definitions through the services; runs and items read
only."""

import pytest
from django.urls import reverse
from django.utils import timezone

from audit.models import AuditEvent
from reviews.models import ReviewDefinition, ReviewInstance, ReviewItem
from tests.factories import EligibleAssignmentFactory, RoleFactory, UserFactory

from .helpers import definition_create, signed_in, start

pytestmark = pytest.mark.django_db


def admin_url(model, view, *args):
    meta = model._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}", args=args)


@pytest.fixture
def run(reviewer):
    role = RoleFactory(name="Payroll Administrator")
    EligibleAssignmentFactory(user=UserFactory(username="report", manager=reviewer), role=role)
    return start(definition_create(roles=[role], name="Payroll quarterly"))


def definition_form(role, **overrides) -> dict:
    data = {
        "roles": [str(role.pk)],
        "named_reviewers": [],
        "name": "Payroll monthly",
        "description": "",
        "review_eligible": "on",
        "reviewer_type": "manager",
        "fallback_reviewer": "",
        "recurrence": "monthly",
        "start_date": timezone.now().date().isoformat(),
        "duration_days": "7",
        "justification_required": "on",
        "reminders": "on",
        "recommendations": "on",
        "inactivity_days": "30",
        "default_decision": "no_change",
        "auto_apply": "on",
        "enabled": "on",
    }
    data.update(overrides)
    return data


def test_a_pim_administrator_adds_a_definition_through_the_service(admin):
    role = RoleFactory(name="Payroll Administrator")
    client = signed_in(admin)
    response = client.post(admin_url(ReviewDefinition, "add"), definition_form(role))
    assert response.status_code == 302, response.content
    definition = ReviewDefinition.objects.get()
    assert definition.created_by == admin and list(definition.roles.all()) == [role]
    assert AuditEvent.objects.get(action="review_definition.created").actor == admin


def test_a_change_in_the_admin_is_audited_and_a_refusal_is_shown(run, admin):
    client = signed_in(admin)
    url = admin_url(ReviewDefinition, "change", run.definition_id)
    role = run.definition.roles.get()
    unchanged = {"name": "Payroll quarterly", "duration_days": "14", "justification_required": ""}
    response = client.post(url, definition_form(role, recurrence="annually", **unchanged))
    assert response.status_code == 302
    changes = AuditEvent.objects.get(action="review_definition.changed").details["changes"]
    assert changes == {"recurrence": {"before": "quarterly", "after": "annually"}}
    response = client.post(url, definition_form(role, reviewer_type="named"), follow=True)
    assert "Name at least one reviewer." in response.content.decode()
    assert ReviewDefinition.objects.get().reviewer_type == "manager"


def test_definitions_are_not_deleted_in_the_admin(run, admin):
    client = signed_in(admin)
    assert (
        client.post(admin_url(ReviewDefinition, "delete", run.definition_id), {"post": "yes"}).status_code
        == 403
    )
    assert ReviewDefinition.objects.exists()


def test_runs_and_items_are_read_only_for_administrators_and_auditors(run, admin, auditor):
    item = run.items.get()
    for person in (admin, auditor):
        client = signed_in(person)
        assert client.get(admin_url(ReviewInstance, "changelist")).status_code == 200
        assert client.get(admin_url(ReviewItem, "changelist")).status_code == 200
        html = client.get(admin_url(ReviewItem, "change", item.pk)).content.decode()
        assert "Report &lt;report&gt;" in html and 'name="decision"' not in html
        assert client.post(admin_url(ReviewItem, "change", item.pk), {"decision": "deny"}).status_code == 403
        assert client.get(admin_url(ReviewInstance, "add")).status_code == 403
        assert client.post(admin_url(ReviewInstance, "delete", run.pk), {"post": "yes"}).status_code == 403
    assert ReviewItem.objects.get(pk=item.pk).decision == ""


def test_the_auditor_cannot_add_or_change_definitions_in_the_admin(run, auditor):
    client = signed_in(auditor)
    assert client.get(admin_url(ReviewDefinition, "changelist")).status_code == 200
    role = run.definition.roles.get()
    assert client.post(admin_url(ReviewDefinition, "add"), definition_form(role)).status_code == 403
    response = client.post(admin_url(ReviewDefinition, "change", run.definition_id), definition_form(role))
    assert response.status_code == 403
    assert ReviewDefinition.objects.get().recurrence == "quarterly"


def test_people_without_a_portal_role_get_no_review_admin_page(run, reviewer):
    client = signed_in(reviewer)
    for url in (
        admin_url(ReviewDefinition, "changelist"),
        admin_url(ReviewItem, "change", run.items.get().pk),
    ):
        assert client.get(url).status_code in (302, 403)
