"""activations.selectors.request_actions: the one answer to which buttons a person gets on a
request (its page and My requests show exactly these)."""

import pytest
from django.utils import timezone

from activations import selectors
from activations.selectors import RequestActions

from .helpers import HOUR, approve, eligible_for, request_activation, role_with

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


def actions(user, request, at=None):
    return selectors.request_actions(user=user, request=request, at=at or timezone.now())


def test_a_pending_request_is_decided_by_its_approver_and_canceled_by_its_requester_or_an_admin(
    requester, approver, admin, outsider
):
    request = request_activation(requester, eligible_for(requester, role_with(approvers=[approver])))

    assert actions(approver, request) == RequestActions(decide=True)
    assert actions(requester, request) == RequestActions(cancel=True)
    assert actions(admin, request) == RequestActions(cancel=True)
    assert actions(outsider, request) == RequestActions()
    late = request.decide_by
    assert actions(approver, request, late) == actions(requester, request, late) == RequestActions()


def test_an_approver_who_approved_has_nothing_left_to_decide(requester, approver, admin):
    role = role_with(approvers=[approver, admin], approvals_required=2)
    request = request_activation(requester, eligible_for(requester, role))

    approve(approver, request)

    assert actions(approver, request) == RequestActions()
    assert actions(admin, request) == RequestActions(decide=True, cancel=True)


def test_a_live_activation_is_deactivated_by_its_requester_and_revoked_by_an_admin(
    requester, admin, outsider
):
    request = request_activation(requester, eligible_for(requester, role_with()))

    assert actions(requester, request) == RequestActions(deactivate=True)
    assert actions(admin, request) == RequestActions(revoke=True)
    assert actions(outsider, request) == RequestActions()
    ended = timezone.now() + HOUR
    assert actions(requester, request, ended) == actions(admin, request, ended) == RequestActions()
