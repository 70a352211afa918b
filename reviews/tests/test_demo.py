"""The demo data includes a running access review, so My reviews shows items on day one."""

import pytest
from django.core.management import call_command

from audit.models import AuditEvent
from reviews.models import ReviewDefinition, ReviewInstance

pytestmark = pytest.mark.django_db


def test_the_demo_starts_a_quarterly_manager_review_once(capsys):
    call_command("demo")
    events = AuditEvent.objects.count()
    call_command("demo")
    assert AuditEvent.objects.count() == events
    definition = ReviewDefinition.objects.get()
    assert definition.recurrence == "quarterly" and definition.reviewer_type == "manager"
    assert sorted(definition.roles.values_list("name", flat=True)) == [
        "Global Administrator",
        "User Administrator",
    ]
    run = ReviewInstance.objects.get()
    assert run.status == ReviewInstance.Status.ACTIVE
    reviewers = {
        item.principal_label: [user.username for user in item.reviewers.all()]
        for item in run.items.prefetch_related("reviewers")
    }
    assert reviewers == {"Ada Admin <ada>": ["bob"], "Alice Requester <alice>": ["bob"]}
