from datetime import timedelta

import pytest
from django.utils import timezone

from activations import services
from activations.models import ActivationRequest
from roles.selectors import user_holds_role
from tests.factories import EligibleAssignmentFactory

pytestmark = pytest.mark.django_db


def test_activation_without_approval_is_granted_at_once(requester, django_capture_on_commit_callbacks):
    eligible = EligibleAssignmentFactory(user=requester)
    with django_capture_on_commit_callbacks(execute=True):
        request = services.activation_request(
            requester=requester,
            eligible=eligible,
            duration=timedelta(hours=1),
            justification="Fix incident 42",
            mfa_verified_at=timezone.now(),
        )
    assert request.status == ActivationRequest.Status.GRANTED
    assert user_holds_role(user=requester, role=eligible.role)
