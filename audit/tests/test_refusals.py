"""audit.refusals: refused attempts leave an audit event that survives the refusal's rollback,
at most PIM_AUDIT_REFUSALS_PER_MINUTE per person and minute."""

from datetime import timedelta

import pytest
from django.core.cache import caches
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponse
from django.test import RequestFactory

from audit.models import AuditEvent
from audit.refusals import (
    SUPPRESSED_ACTION,
    audit_permission_denied,
    audit_refusal,
    audit_refusals_flush,
)
from pim_portal.middleware import RequestIdMiddleware
from tests.factories import RoleFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


def refusals(action="test.refused"):
    return list(AuditEvent.objects.filter(action=action).order_by("seq"))


def test_a_refusal_is_an_event_with_outcome_denied(outsider):
    role = RoleFactory(name="Vault")

    event = audit_refusal(action="test.refused", actor=outsider, role=role, details={"why": "no"})

    assert event is not None and refusals() == [event]
    assert (event.actor, event.outcome, event.role_label, event.details) == (
        outsider,
        "denied",
        "Vault",
        {"why": "no"},
    )


def test_a_permission_denial_names_the_action_attempted_and_is_returned_to_raise(outsider):
    error = audit_permission_denied(
        actor=outsider,
        attempted="role_settings_update",
        permission="roles.change_rolesettings",
        message="No.",
    )

    assert isinstance(error, PermissionDenied) and str(error) == "No."
    [event] = refusals("admin.permission_denied")
    assert event.details == {
        "attempted": "role_settings_update",
        "permission": "roles.change_rolesettings",
        "message": "No.",
    }


def test_a_refusal_inside_a_transaction_survives_its_rollback(outsider):
    with pytest.raises(PermissionDenied), transaction.atomic():
        RoleFactory(name="Half-made")  # the refused change, rolled back with the transaction
        raise audit_permission_denied(actor=outsider, attempted="role_create", message="No.")

    assert not refusals("admin.permission_denied")  # kept aside while the transaction was open
    assert audit_refusals_flush() == 1  # what the middleware does at the end of the request
    [event] = refusals("admin.permission_denied")
    assert event.actor == outsider
    assert not AuditEvent.objects.filter(action="role.created").exists()


def test_a_refusal_inside_a_transaction_that_commits_is_written_after_the_commit(
    outsider, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        audit_refusal(action="test.refused", actor=outsider)
        assert not refusals()

    assert len(refusals()) == 1
    assert audit_refusals_flush() == 0  # written once


def test_the_middleware_writes_refusals_of_a_view_whose_transaction_rolled_back(outsider):
    def view(request):
        try:
            with transaction.atomic():
                raise audit_permission_denied(actor=outsider, attempted="alert_dismiss", message="No.")
        except PermissionDenied:
            return HttpResponse(status=403)

    response = RequestIdMiddleware(view)(RequestFactory().post("/alerts/1/dismiss/"))

    assert response.status_code == 403
    [event] = refusals("admin.permission_denied")
    assert event.request_id == response["X-Request-ID"]


# --- Rate limit -------------------------------------------------------------------------------


def test_refusals_beyond_the_limit_are_suppressed_with_one_event_per_minute(outsider, settings, clock):
    settings.PIM_AUDIT_REFUSALS_PER_MINUTE = 3

    written = [audit_refusal(action="test.refused", actor=outsider) for _ in range(10)]

    assert [event is not None for event in written] == [True, True, True, True] + [False] * 6
    assert len(refusals()) == 3
    [suppressed] = refusals(SUPPRESSED_ACTION)
    assert (suppressed.actor, suppressed.outcome) == (outsider, "denied")
    assert suppressed.details["limit"] == 3 and suppressed.details["first_suppressed"] == "test.refused"

    clock.shift(timedelta(minutes=1))
    assert audit_refusal(action="test.refused", actor=outsider) is not None
    assert len(refusals()) == 4 and len(refusals(SUPPRESSED_ACTION)) == 1


def test_each_person_has_their_own_limit(outsider, requester, settings):
    settings.PIM_AUDIT_REFUSALS_PER_MINUTE = 1
    for _ in range(3):
        audit_refusal(action="test.refused", actor=outsider)

    assert audit_refusal(action="test.refused", actor=requester) is not None
    assert [e.actor for e in refusals()] == [outsider, requester]


def test_with_the_counter_down_every_refusal_is_recorded(outsider, settings, monkeypatch):
    settings.PIM_AUDIT_REFUSALS_PER_MINUTE = 1

    def down(*args, **kwargs):
        raise ConnectionError("cache unavailable")

    monkeypatch.setattr(caches["refusals"], "incr", down)
    for _ in range(3):
        audit_refusal(action="test.refused", actor=outsider)

    assert len(refusals()) == 3


def test_the_system_is_never_rate_limited(settings):
    settings.PIM_AUDIT_REFUSALS_PER_MINUTE = 1
    for _ in range(3):
        audit_refusal(action="test.refused", actor=None)
    assert len(refusals()) == 3


def test_a_suppressed_refusal_still_refuses(outsider, settings):
    settings.PIM_AUDIT_REFUSALS_PER_MINUTE = 0
    attacker = UserFactory(username="attacker")
    for _ in range(5):
        with pytest.raises(PermissionDenied, match="No"):
            raise audit_permission_denied(actor=attacker, attempted="user_create", message="No.")
    assert not refusals("admin.permission_denied") and len(refusals(SUPPRESSED_ACTION)) == 1
