"""Security alerts through the API: PIM Administrators and Auditors read them, only PIM
Administrators dismiss them (with a reason and a fresh code), through the portal's service."""

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.models import Alert
from audit.models import AuditEvent
from tests.factories import totp_code, totp_device

from .helpers import error, session_client

pytestmark = pytest.mark.django_db

URL = "/api/v1/alerts/"


def _alert(kind: str, severity: str, status: str = Alert.Status.OPEN, *, ago: int = 0) -> Alert:
    at = timezone.now() - timedelta(hours=ago)
    return Alert.objects.create(
        kind=kind,
        severity=severity,
        status=status,
        items=[{"type": "role", "id": "r1", "label": "Payroll Administrator"}],
        reason="Activations of these roles need no MFA.",
        first_raised_at=at,
        last_evaluated_at=at,
        resolved_at=at if status == Alert.Status.RESOLVED else None,
    )


@pytest.fixture
def alerts():
    return {
        "high": _alert("roles_without_mfa", Alert.Severity.HIGH, ago=2),
        "low": _alert("unused_eligibilities", Alert.Severity.LOW, ago=1),
        "dismissed": _alert("long_activation_duration", Alert.Severity.MEDIUM, Alert.Status.DISMISSED),
        "resolved": _alert("critical_roles_without_approval", Alert.Severity.HIGH, Alert.Status.RESOLVED),
    }


def dismiss_url(alert) -> str:
    return f"{URL}{alert.pk}/dismiss/"


def ids(response) -> list[int]:
    assert response.status_code == 200, response.json()
    return [item["id"] for item in response.json()["results"]]


# --- Who may see them ------------------------------------------------------------------------


def test_anonymous_callers_get_401_everywhere(anonymous, alerts):
    for response in (
        anonymous.get(URL),
        anonymous.get(f"{URL}{alerts['high'].pk}/"),
        anonymous.post(dismiss_url(alerts["high"]), {"reason": "x"}),
    ):
        assert response.status_code == 401
        assert error(response)["code"] == "not_authenticated"


def test_people_without_the_alert_roles_get_403_for_the_list_and_404_for_an_alert(
    requester, outsider, alerts, token_client
):
    for person in (requester, outsider):
        client = token_client(person)
        listed = client.get(URL)
        one = client.get(f"{URL}{alerts['high'].pk}/")
        dismissed = client.post(dismiss_url(alerts["high"]), {"reason": "Fine", "otp_code": "123456"})

        assert listed.status_code == 403 and error(listed)["code"] == "permission_denied"
        assert one.status_code == 404 and error(one)["code"] == "not_found"
        assert dismissed.status_code == 404
        # the same answer as for an alert that does not exist
        assert client.get(f"{URL}999999/").status_code == 404
    assert Alert.objects.get(pk=alerts["high"].pk).status == Alert.Status.OPEN


def test_auditors_and_admins_list_open_alerts_newest_first(auditor, admin, alerts, token_client):
    for person in (auditor, admin):
        assert ids(token_client(person).get(URL)) == [alerts["low"].pk, alerts["high"].pk]


def test_the_list_filters_by_status_and_severity(auditor, alerts, token_client):
    client = token_client(auditor)

    assert ids(client.get(URL, {"status": "dismissed"})) == [alerts["dismissed"].pk]
    assert ids(client.get(URL, {"status": "resolved"})) == [alerts["resolved"].pk]
    assert ids(client.get(URL, {"severity": "high"})) == [alerts["high"].pk]
    assert ids(client.get(URL, {"status": "resolved", "severity": "low"})) == []


def test_an_unknown_status_or_severity_is_a_400_naming_the_field(auditor, token_client):
    response = token_client(auditor).get(URL, {"status": "closed", "severity": "urgent"})

    assert response.status_code == 400
    assert set(error(response)["fields"]) == {"status", "severity"}


def test_one_alert_with_its_items(auditor, alerts, token_client):
    response = token_client(auditor).get(f"{URL}{alerts['high'].pk}/")

    assert response.status_code == 200
    body = response.json()
    assert body["kind"] == "roles_without_mfa" and body["severity"] == "high" and body["status"] == "open"
    assert body["items"] == [{"type": "role", "id": "r1", "label": "Payroll Administrator"}]
    assert body["title"] == alerts["high"].title
    assert body["dismissed_by"] is None


# --- Dismissing ------------------------------------------------------------------------------


def test_an_auditor_may_read_but_not_dismiss(auditor, alerts, token_client):
    response = token_client(auditor).post(dismiss_url(alerts["high"]), {"reason": "Fine", "otp_code": "1"})

    assert response.status_code == 403
    assert error(response)["code"] == "permission_denied"
    assert Alert.objects.get(pk=alerts["high"].pk).status == Alert.Status.OPEN
    assert not AuditEvent.objects.filter(action="alert.dismissed").exists()


def test_an_admin_dismisses_with_a_reason_and_a_fresh_code_audited(admin, alerts, token_client, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    device = totp_device(admin)
    alert = alerts["high"]

    response = token_client(admin).post(
        dismiss_url(alert), {"reason": "Accepted risk: lab tenant", "otp_code": totp_code(device)}
    )

    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "dismissed"
    assert body["dismissed_by"] == "pimadmin"
    assert body["dismiss_reason"] == "Accepted risk: lab tenant"
    alert.refresh_from_db()
    assert alert.status == Alert.Status.DISMISSED and alert.dismissed_by_id == admin.pk
    event = AuditEvent.objects.get(action="alert.dismissed", target_id=str(alert.pk))
    assert event.actor_id == admin.pk
    assert event.details["reason"] == "Accepted risk: lab tenant"
    assert alert.pk not in ids(token_client(admin).get(URL))


@pytest.mark.parametrize("reason", [None, "", "   "])
def test_a_reason_is_required_and_no_code_is_spent_without_one(
    admin, alerts, token_client, time_machine, reason
):
    time_machine.move_to(timezone.now(), tick=False)
    device = totp_device(admin)
    code = totp_code(device)
    body = {"otp_code": code} if reason is None else {"reason": reason, "otp_code": code}

    response = token_client(admin).post(dismiss_url(alerts["high"]), body)

    assert response.status_code == 400
    assert error(response)["fields"] == {"reason": ["A reason is required."]}
    assert Alert.objects.get(pk=alerts["high"].pk).status == Alert.Status.OPEN
    # the code was not spent: it still works
    again = token_client(admin).post(dismiss_url(alerts["high"]), {"reason": "Ok", "otp_code": code})
    assert again.status_code == 200, again.json()


def test_a_dismissal_needs_a_valid_code(admin, alerts, token_client):
    totp_device(admin)
    client = token_client(admin)

    missing = client.post(dismiss_url(alerts["high"]), {"reason": "Fine"})
    wrong = client.post(dismiss_url(alerts["high"]), {"reason": "Fine", "otp_code": "000000"})

    assert missing.status_code == 400 and list(error(missing)["fields"]) == ["otp_code"]
    assert wrong.status_code == 400 and list(error(wrong)["fields"]) == ["otp_code"]
    assert Alert.objects.get(pk=alerts["high"].pk).status == Alert.Status.OPEN
    assert not AuditEvent.objects.filter(action="alert.dismissed").exists()


def test_fields_that_try_to_set_the_status_or_who_dismissed_are_refused(admin, alerts, token_client):
    totp_device(admin)
    body = {"reason": "Fine", "otp_code": "123456", "status": "resolved", "dismissed_by": "auditor"}

    response = token_client(admin).post(dismiss_url(alerts["high"]), body)

    assert response.status_code == 400
    assert set(error(response)["fields"]) == {"status", "dismissed_by"}
    assert Alert.objects.get(pk=alerts["high"].pk).status == Alert.Status.OPEN


def test_a_second_dismissal_and_a_resolved_alert_are_409(admin, alerts, token_client, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    device = totp_device(admin)
    client = token_client(admin)
    first = client.post(dismiss_url(alerts["high"]), {"reason": "Fine", "otp_code": totp_code(device)})
    time_machine.shift(timedelta(seconds=31))  # the next code

    second = client.post(dismiss_url(alerts["high"]), {"reason": "Again", "otp_code": totp_code(device)})
    resolved = client.post(dismiss_url(alerts["resolved"]), {"reason": "Why", "otp_code": totp_code(device)})

    assert first.status_code == 200, first.json()
    assert second.status_code == 409 and error(second)["code"] == "conflict"
    assert "dismissed" in error(second)["message"]
    assert resolved.status_code == 409 and "resolved" in error(resolved)["message"]
    assert AuditEvent.objects.filter(action="alert.dismissed").count() == 1
    assert Alert.objects.get(pk=alerts["high"].pk).dismiss_reason == "Fine"


def _session_post(client, url, body):
    client.get("/api/tokens/")  # any portal page with a form sets the CSRF cookie
    token = client.cookies["csrftoken"].value
    return client.post(url, body, content_type="application/json", HTTP_X_CSRFTOKEN=token)


def test_a_session_dismisses_only_after_a_recent_step_up(admin, alerts, settings):
    stale = session_client(admin, stepped_up_at=timezone.now() - settings.PIM_STEP_UP_WINDOW - timedelta(1))
    fresh = session_client(admin, stepped_up_at=timezone.now())

    refused = _session_post(stale, dismiss_url(alerts["high"]), {"reason": "Fine"})
    assert refused.status_code == 400, refused.content
    assert error(refused)["fields"] == {
        "otp_code": ["Enter a fresh code from your authenticator app to continue."]
    }
    assert Alert.objects.get(pk=alerts["high"].pk).status == Alert.Status.OPEN

    accepted = _session_post(fresh, dismiss_url(alerts["high"]), {"reason": "Fine"})
    assert accepted.status_code == 200, accepted.content
    assert Alert.objects.get(pk=alerts["high"].pk).status == Alert.Status.DISMISSED
