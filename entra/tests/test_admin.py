"""The Entra pages of the admin: sync runs and drift (read only) and "Test connection"."""

import pytest
from django.test import Client
from django.urls import reverse

from audit.models import AuditEvent
from entra.models import DriftFinding, SyncRun
from entra.services import entra_sync_run
from entra.tests.conftest import contoso
from entra.tests.stub import CLIENT_SECRET
from tests.factories import PASSWORD, totp_code, totp_device

pytestmark = pytest.mark.django_db

RUNS = reverse("admin:entra_syncrun_changelist")
TEST_CONNECTION = reverse("admin:entra_test_connection")


def signed_in(user) -> Client:
    client = Client()
    device = totp_device(user)
    client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert client.post("/accounts/verify/", {"otp_token": totp_code(device)}).status_code == 302
    return client


def test_an_administrator_sees_the_runs_and_their_counts(graph, stub, admin):
    contoso(stub)
    run = entra_sync_run()
    client = signed_in(admin)

    listing = client.get(RUNS)
    detail = client.get(reverse("admin:entra_syncrun_change", args=[run.pk]))

    assert listing.status_code == 200 and b"Test connection" in listing.content
    assert b"users created 5" in listing.content
    assert detail.status_code == 200 and b"&quot;created&quot;: 5" in detail.content
    assert b'name="_save"' not in detail.content  # read only
    assert client.post(reverse("admin:entra_syncrun_delete", args=[run.pk])).status_code == 403


def test_an_administrator_tests_the_connection_and_it_is_audited(graph, stub, admin):
    contoso(stub)
    client = signed_in(admin)

    page = client.get(TEST_CONNECTION)
    assert page.status_code == 200 and stub.received == []  # a GET changes and calls nothing
    response = client.post(TEST_CONNECTION)

    assert response.status_code == 200
    assert "Connected." in response.content.decode()
    assert "“Global Administrator”" in response.content.decode()
    event = AuditEvent.objects.get(action="entra.connection_tested")
    assert event.actor_id == admin.pk and event.outcome == "success"
    assert CLIENT_SECRET not in str(event.details) and "stub-access-token" not in str(event.details)


def test_a_failed_connection_says_why(graph, stub, admin):
    stub.stop()
    response = signed_in(admin).post(TEST_CONNECTION)
    assert "Failed." in response.content.decode() and "unreachable" in response.content.decode()
    assert AuditEvent.objects.get(action="entra.connection_tested").outcome == "failure"


def test_an_auditor_reads_but_cannot_test_the_connection(graph, stub, auditor):
    client = signed_in(auditor)
    assert client.get(RUNS).status_code == 200
    assert b"Test connection" not in client.get(RUNS).content
    assert client.post(TEST_CONNECTION).status_code == 403
    assert client.get(reverse("admin:entra_driftfinding_changelist")).status_code == 200
    assert not AuditEvent.objects.filter(action="entra.connection_tested").exists()


def test_people_without_a_portal_role_are_sent_to_sign_in(graph, stub, outsider):
    assert signed_in(outsider).post(TEST_CONNECTION).status_code == 302
    assert Client().get(RUNS).status_code == 302
    assert stub.received == []


def test_drift_findings_are_listed_for_administrators(admin):
    from django.utils import timezone

    now = timezone.now()
    DriftFinding.objects.create(
        principal_id="p1",
        principal_type="other",
        role_template_id="62e90394-69f5-4237-9190-012177145e10",
        directory_scope="/",
        first_seen_at=now,
        last_seen_at=now,
    )
    response = signed_in(admin).get(reverse("admin:entra_driftfinding_changelist"))
    assert response.status_code == 200 and b"p1" in response.content
    assert SyncRun.objects.count() == 0
