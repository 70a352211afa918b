from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import AuditEvent
from roles.jobs import assignment_expire_due
from roles.models import DirectoryOperation
from tests.factories import ActiveAssignmentFactory, EligibleAssignmentFactory

pytestmark = pytest.mark.django_db


def past(**kwargs):
    now = timezone.now()
    return {"starts_at": now - timedelta(days=2), "ends_at": now - timedelta(minutes=1), **kwargs}


def test_ended_assignments_are_recorded_once_with_an_event_each_and_a_directory_revoke():
    eligible = EligibleAssignmentFactory(**past())
    direct = ActiveAssignmentFactory(**past())
    still_running = EligibleAssignmentFactory()
    permanent = ActiveAssignmentFactory(ends_at=None)

    assert assignment_expire_due() == 2
    assert assignment_expire_due() == 0  # claimed: a second run records nothing again

    for assignment in (eligible, direct, still_running, permanent):
        assignment.refresh_from_db()
    assert (eligible.end_reason, direct.end_reason) == ("expired", "expired")
    assert still_running.end_reason == permanent.end_reason == ""
    expired = AuditEvent.objects.filter(action__endswith="_assignment.expired")
    assert sorted(expired.values_list("target_id", flat=True)) == sorted([str(eligible.pk), str(direct.pk)])
    assert list(
        DirectoryOperation.objects.filter(operation="revoke").values_list("assignment_id", flat=True)
    ) == [direct.pk]


def test_activations_are_left_to_the_activation_expiry_job():
    ActiveAssignmentFactory(**past(origin="activation"))
    assert assignment_expire_due() == 0


def test_removed_assignments_are_not_recorded_as_expired():
    EligibleAssignmentFactory(**past(ended_at=timezone.now() - timedelta(hours=1), end_reason="removed"))
    assert assignment_expire_due() == 0


def test_catch_up_across_batches():
    for _ in range(5):
        EligibleAssignmentFactory(**past())
    assert assignment_expire_due(batch=2) == 5
