from datetime import timedelta

import pytest
import time_machine
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from audit.models import AuditEvent
from reviews import services
from reviews.models import ReviewInstance, ReviewItem
from roles.models import EligibleAssignment, Role
from tests.factories import EligibleAssignmentFactory, UserFactory

pytestmark = pytest.mark.django_db

GA = "62e90394-69f5-4237-9190-012177145e10"


def test_quarterly_manager_review_removes_the_denied_eligibility(admin):
    role = Role.objects.get(template_id=GA)
    manager = UserFactory(username="manager")
    keeper, leaver, lonely = (
        UserFactory(username=n, manager=manager) for n in ("keeper", "leaver", "lonely")
    )
    lonely.manager = None
    lonely.save()
    fallback = UserFactory(username="fallback")
    for user in (keeper, leaver, lonely):
        EligibleAssignmentFactory(user=user, role=role, ends_at=timezone.now() + timedelta(days=200))
    services.review_definition_create(
        actor=admin,
        roles=[role],
        name="GA quarterly",
        reviewer_type="manager",
        recurrence="quarterly",
        start_date=timezone.now().date(),
        duration_days=14,
        fallback_reviewer=fallback,
    )
    [instance] = services.review_instances_start_due()
    assert services.review_instances_start_due() == []  # idempotent
    items = {item.user.username: item for item in instance.items.select_related("user")}
    assert set(items) == {"keeper", "leaver", "lonely"}
    assert list(items["lonely"].reviewers.values_list("username", flat=True)) == ["fallback"]
    assert list(items["leaver"].reviewers.values_list("username", flat=True)) == ["manager"]
    assert items["leaver"].recommendation == "deny"  # never activated

    services.review_item_decide(
        reviewer=manager, item=items["keeper"], decision="approve", justification="Needed"
    )
    services.review_item_decide(
        reviewer=manager, item=items["leaver"], decision="deny", justification="Left team"
    )
    with pytest.raises(PermissionDenied):
        services.review_item_decide(
            reviewer=fallback, item=items["leaver"], decision="approve", justification="x"
        )

    with time_machine.travel(instance.ends_at, tick=False):
        assert services.review_instances_close_due() == 1
    instance.refresh_from_db()
    assert instance.status == ReviewInstance.Status.APPLIED
    leaver_eligibility = EligibleAssignment.objects.get(user=leaver, role=role)
    assert leaver_eligibility.end_reason == "review"
    assert EligibleAssignment.objects.get(user=keeper, role=role).ended_at is None
    assert ReviewItem.objects.get(pk=items["leaver"].pk).outcome == "removed"
    assert ReviewItem.objects.get(pk=items["lonely"].pk).outcome == "unchanged"
    removal = AuditEvent.objects.get(
        action="eligible_assignment.removed", target_id=str(leaver_eligibility.pk)
    )
    assert "Left team" in removal.details["reason"]
    assert services.review_instance_apply(actor=None, instance=instance) == {}  # applied once
