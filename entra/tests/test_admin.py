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
    assert "arm" not in event.details and 'id="arm-results"' not in response.content.decode()
    assert not [r for r in stub.received if r.path.startswith("/subscriptions/")]  # no ARM part: no ARM call


SUB = "a1b2c3d4-0000-4000-8000-000000000001"
OTHER_SUB = "a1b2c3d4-0000-4000-8000-000000000002"
ELIGIBILITIES = "/providers/Microsoft.Authorization/roleEligibilityScheduleInstances"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


def test_with_arm_subscriptions_each_is_read_and_answers_on_its_own(graph, stub, admin, entra_settings):
    from entra.tests.stub import ARM

    contoso(stub)
    entra_settings.ENTRA_ARM_SUBSCRIPTIONS = [SUB, OTHER_SUB]
    stub.arm.add_eligibility("0a000000-0000-4000-8000-00000000000a", READER, f"/subscriptions/{SUB}")
    stub.arm.add_eligibility(  # below the subscription: not in the test's atScope() read
        "0a000000-0000-4000-8000-00000000000a", READER, f"/subscriptions/{SUB}/resourceGroups/rg-payroll"
    )
    stub.arm.forbidden.add(f"/subscriptions/{OTHER_SUB}")  # the app holds no Azure role there

    response = signed_in(admin).post(TEST_CONNECTION)

    text = response.content.decode()
    assert response.status_code == 200 and "Failed." in text and "“Global Administrator”" in text
    reads = [r for r in stub.received if r.path.startswith("/subscriptions/")]
    assert [(r.method, r.path, r.query.get("$filter"), r.status) for r in reads] == [
        ("GET", f"/subscriptions/{SUB}{ELIGIBILITIES}", "atScope()", 200),
        ("GET", f"/subscriptions/{OTHER_SUB}{ELIGIBILITIES}", "atScope()", 403),
    ]
    assert set(stub.token_scopes.values()) == {"https://graph.microsoft.com/.default", f"{ARM}/.default"}
    event = AuditEvent.objects.get(action="entra.connection_tested")
    assert event.outcome == "failure" and event.details["ok"] is False
    good, refused = event.details["arm"]
    assert (good["subscription"], good["ok"]) == (SUB, True)
    assert f"Read 1 eligibility schedule instance at /subscriptions/{SUB}" in good["message"]
    assert (refused["subscription"], refused["ok"]) == (OTHER_SUB, False)
    assert "AuthorizationFailed" in refused["message"] and "User Access Administrator" in refused["message"]
    assert 'id="arm-results"' in text and f'data-subscription="{OTHER_SUB}"' in text
    assert "AuthorizationFailed" in text
    assert CLIENT_SECRET not in str(event.details) and "stub-access-token" not in str(event.details)

    stub.arm.forbidden.clear()
    again = signed_in(admin).post(TEST_CONNECTION).content.decode()
    assert "Connected." in again and "Failed." not in again
    assert AuditEvent.objects.filter(action="entra.connection_tested").latest("seq").outcome == "success"


def test_an_arm_that_cannot_answer_fails_each_subscription_and_graph_still_answers(
    graph, stub, admin, entra_settings
):
    contoso(stub)
    entra_settings.ENTRA_ARM_SUBSCRIPTIONS = [SUB]
    stub.fail("GET", f"/subscriptions/{SUB}{ELIGIBILITIES}", 503)

    response = signed_in(admin).post(TEST_CONNECTION)

    text = response.content.decode()
    assert "Failed." in text and "“Global Administrator”" in text
    [answer] = AuditEvent.objects.get(action="entra.connection_tested").details["arm"]
    assert answer["ok"] is False and "503" in answer["message"]
    assert len([r for r in stub.received if r.path.startswith("/subscriptions/")]) == 1  # not retried


def test_without_an_arm_token_each_subscription_says_so(stub, admin, entra_settings, monkeypatch):
    from entra import client
    from entra.tests.stub import StubSession

    entra_settings.ENTRA_CLIENT_SECRET = "a-wrong-secret"
    entra_settings.ENTRA_ARM_SUBSCRIPTIONS = [SUB]
    monkeypatch.setattr(client, "new_session", lambda: StubSession(stub))
    client.graph_install(client.GraphClient.from_settings(sleep=lambda seconds: None))

    response = signed_in(admin).post(TEST_CONNECTION)

    assert "Failed." in response.content.decode()
    [answer] = AuditEvent.objects.get(action="entra.connection_tested").details["arm"]
    assert answer["ok"] is False and answer["message"].startswith("No token for Azure Resource Manager")
    assert "invalid_client" in answer["message"]
    assert not [r for r in stub.received if r.path.startswith("/subscriptions/")]


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
