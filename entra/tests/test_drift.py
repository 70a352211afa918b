"""Drift: active assignments in Entra that the portal did not make."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.models import User
from activations.models import ActivationRequest
from activations.services import activation_revoke as revoke
from audit.models import AuditEvent
from entra.models import DriftFinding
from entra.selectors import open_drift_findings
from entra.services import entra_sync_run
from entra.tests.conftest import (
    ALICE,
    BOB,
    DAVE,
    ERIN,
    GLOBAL_ADMIN,
    HELPDESK_ADMIN,
    SERVICE_PRINCIPAL,
    TIER0,
    USER_ADMIN,
    activate,
    contoso,
)
from roles.directory_services import directory_outbox_drain
from roles.models import Role

pytestmark = pytest.mark.django_db
REQUESTS = "/v1.0/roleManagement/directory/roleAssignmentScheduleRequests"


@pytest.fixture
def tenant(graph, stub):
    """The stub tenant, imported once; Alice then activates Helpdesk Administrator in the
    portal, which the outbox carries over to Entra."""
    contoso(stub)
    entra_sync_run()
    now = timezone.now()
    activate(User.objects.get(external_id=ALICE), entra_role(HELPDESK_ADMIN), now=now)
    directory_outbox_drain(now=now)
    assert len(stub.assignments) == 1
    return stub


def entra_role(template_id) -> Role:
    return Role.objects.get(kind="entra", template_id=template_id)


def removals(stub):
    return [c for c in stub.requests_to("POST", REQUESTS) if c.body["action"] == "adminRemove"]


def test_an_assignment_made_outside_the_portal_is_reported_once(tenant):
    tenant.add_assignment(BOB, HELPDESK_ADMIN, assignmentType="Assigned")

    run = entra_sync_run()

    [finding] = open_drift_findings()
    assert (finding.principal_id, finding.role_template_id, finding.directory_scope) == (
        BOB,
        HELPDESK_ADMIN,
        "/",
    )
    assert finding.user.external_id == BOB and finding.role == entra_role(HELPDESK_ADMIN)
    assert finding.principal_type == "user" and finding.assignment_type == "Assigned"
    assert finding.entra_ends_at is None  # permanent: standing access
    assert run.counts["drift"] == {"portal": 1, "detected": 1}
    event = AuditEvent.objects.get(action="entra.drift_detected")
    assert event.actor_label == "system" and event.role_label == "Helpdesk Administrator"
    assert event.details["principal"] == "Bob Example <bob@contoso.example>"
    first_seen = finding.first_seen_at

    second = entra_sync_run(now=timezone.now() + timedelta(minutes=10))

    assert second.counts["drift"] == {"portal": 1, "open": 1}
    assert AuditEvent.objects.filter(action__startswith="entra.drift").count() == 1
    finding.refresh_from_db()
    assert finding.first_seen_at == first_seen and finding.last_seen_at > first_seen
    assert removals(tenant) == []  # reported only: ENTRA_REMOVE_DRIFT is off


def test_drift_that_goes_away_is_resolved(tenant):
    extra = tenant.add_assignment(BOB, HELPDESK_ADMIN)
    entra_sync_run()
    tenant.assignments.remove(extra)

    run = entra_sync_run()

    assert open_drift_findings().count() == 0
    finding = DriftFinding.objects.get()
    assert finding.resolution == "gone" and finding.resolved_at is not None
    assert run.counts["drift"]["resolved"] == 1
    assert AuditEvent.objects.filter(action="entra.drift_resolved").count() == 1


def test_with_removal_on_drift_is_removed_in_entra(tenant, entra_settings):
    entra_settings.ENTRA_REMOVE_DRIFT = True
    tenant.add_assignment(BOB, HELPDESK_ADMIN)
    tenant.add_assignment(TIER0, USER_ADMIN, assignmentType="Activated")

    run = entra_sync_run()

    assert sorted(c.body["principalId"] for c in removals(tenant)) == sorted([BOB, TIER0])
    assert "assigned outside the portal" in removals(tenant)[0].body["justification"]
    assert [a["principalId"] for a in tenant.assignments] == [ALICE]  # the portal's own stays
    assert open_drift_findings().count() == 0
    assert set(DriftFinding.objects.values_list("resolution", flat=True)) == {"removed"}
    assert run.counts["drift"] == {"portal": 1, "detected": 2, "removed": 2}
    assert AuditEvent.objects.filter(action="entra.drift_removed").count() == 2


def test_removal_spares_service_principals_excluded_accounts_and_global_administrators(
    tenant, entra_settings
):
    entra_settings.ENTRA_REMOVE_DRIFT = True
    entra_settings.ENTRA_DRIFT_EXCLUDE = [DAVE.upper()]
    tenant.add_assignment(SERVICE_PRINCIPAL, GLOBAL_ADMIN)  # e.g. the portal's own app
    tenant.add_assignment(ERIN, GLOBAL_ADMIN)  # a break-glass account
    tenant.add_assignment(DAVE, HELPDESK_ADMIN)

    run = entra_sync_run()

    assert removals(tenant) == []
    assert open_drift_findings().count() == 3
    assert run.counts["drift"]["kept"] == 3
    other = DriftFinding.objects.get(principal_id=SERVICE_PRINCIPAL)
    assert other.principal_type == "other" and other.principal_label == SERVICE_PRINCIPAL


def test_removal_errors_are_recorded_and_retried_next_run(tenant, entra_settings):
    entra_settings.ENTRA_REMOVE_DRIFT = True
    tenant.add_assignment(BOB, HELPDESK_ADMIN)
    tenant.fail(
        "POST",
        "roleManagement/directory/roleAssignmentScheduleRequests",
        403,
        code="Authorization_RequestDenied",
    )

    run = entra_sync_run()

    assert run.status == "partial" and "Authorization_RequestDenied" in run.errors[0]["message"]
    assert open_drift_findings().count() == 1
    entra_sync_run()
    assert open_drift_findings().count() == 0


def test_inherited_assignments_are_not_drift(tenant):
    tenant.add_assignment(DAVE, USER_ADMIN, memberType="Group")

    run = entra_sync_run()

    assert open_drift_findings().count() == 0
    assert run.counts["drift"]["inherited"] == 1


def test_an_assignment_the_portal_is_still_removing_is_not_drift(tenant):
    alice_assignment = tenant.assignments[0]
    revoked_at = timezone.now() + timedelta(minutes=10)
    request = ActivationRequest.objects.get(requester__external_id=ALICE)
    revoke(actor=None, request=request, reason="Incident closed", now=revoked_at)
    tenant.stop()  # the revoke cannot be carried out yet
    directory_outbox_drain(now=revoked_at)
    tenant.start()

    run = entra_sync_run(now=revoked_at + timedelta(minutes=30))

    assert tenant.assignments == [alice_assignment]
    assert open_drift_findings().count() == 0
    assert run.counts["drift"] == {"portal": 1}


def test_an_assignment_the_portal_just_ended_is_not_drift_while_entra_catches_up(tenant):
    ends_at = timezone.now() + timedelta(hours=1)
    tenant.assignments[0]["endDateTime"] = None  # as if Entra had not applied the expiration yet

    soon_after = entra_sync_run(now=ends_at + timedelta(minutes=5))
    much_later = entra_sync_run(now=ends_at + timedelta(hours=1))

    assert soon_after.counts["drift"] == {"portal": 1}
    assert much_later.counts["drift"] == {"detected": 1}


def test_an_expired_assignment_entra_still_lists_is_not_drift(tenant):
    tenant.add_assignment(BOB, USER_ADMIN, endDateTime="2026-01-02T00:00:00Z")

    run = entra_sync_run()

    assert open_drift_findings().count() == 0
    assert run.counts["drift"] == {"portal": 1, "expired": 1}
