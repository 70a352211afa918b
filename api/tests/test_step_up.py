"""POST /api/v1/step-up/: one code opens a window for that token, in which decisions and
activations need no code of their own; codes stay single use; a code's window does not
satisfy a phishing-resistant role. (A passkey-opened window: tests/browser/test_passkey_journey.py,
which makes a real assertion with Chromium's virtual authenticator.)"""

from datetime import timedelta

import pytest
from django.utils import timezone

from activations.models import ActivationRequest
from activations.services import activation_request
from api.models import ApiToken
from audit.models import AuditEvent
from roles.models import AuthenticationStrength, RoleSettings
from tests.factories import EligibleAssignmentFactory, RoleFactory, UserFactory, totp_code, totp_device

from .helpers import error

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]

STEP = timedelta(seconds=30)  # the next TOTP code


@pytest.fixture
def approver_device(approver):
    return totp_device(approver)


def pending_requests(approval_role, count: int) -> list[ActivationRequest]:
    requests = []
    for n in range(count):
        person = UserFactory(username=f"requester-{n}")
        eligible = EligibleAssignmentFactory(user=person, role=approval_role)
        requests.append(
            activation_request(
                requester=person,
                eligible=eligible,
                duration=timedelta(hours=1),
                justification=f"Batch {n}",
                mfa_verified_at=timezone.now(),
            )
        )
    return requests


def decide(client, request, decision="approve", **extra):
    body = {"decision": decision, **({"reason": "Not now"} if decision == "deny" else {}), **extra}
    return client.post(f"/api/v1/approvals/{request.pk}/decision/", body)


def test_one_approver_decides_fifty_requests_in_one_step_up_window(
    approver, approver_device, approval_role, token_client, clock
):
    requests = pending_requests(approval_role, 50)
    client = token_client(approver)

    opened = client.post("/api/v1/step-up/", {"otp_code": totp_code(approver_device)})

    assert opened.status_code == 200, opened.json()
    window = opened.json()
    assert window["open"] is True and window["factor"] == "totp"
    for n, request in enumerate(requests):
        clock.shift(timedelta(seconds=4))  # 200 s in all, inside the 300 s window
        response = decide(client, request, "deny" if n % 10 == 9 else "approve")
        assert response.status_code == 200, response.json()
    statuses = ActivationRequest.objects.filter(pk__in=[r.pk for r in requests]).values_list(
        "status", flat=True
    )
    assert sorted(set(statuses)) == ["denied", "granted"]
    assert list(statuses).count("granted") == 45
    event = AuditEvent.objects.get(action="api.step_up_opened")
    assert event.actor_id == approver.pk and event.details["factor"] == "totp"
    assert event.details["prefix"] == ApiToken.objects.get(user=approver).prefix


def test_after_the_window_a_decision_needs_a_code_again(
    approver, approver_device, approval_role, token_client, clock, settings
):
    first, second = pending_requests(approval_role, 2)
    client = token_client(approver)
    client.post("/api/v1/step-up/", {"otp_code": totp_code(approver_device)})
    assert decide(client, first).status_code == 200

    clock.shift(settings.PIM_STEP_UP_WINDOW + timedelta(seconds=1))
    assert client.get("/api/v1/step-up/").json()["open"] is False
    response = decide(client, second)

    assert response.status_code == 400
    assert "open a step-up window for this token" in error(response)["fields"]["otp_code"][0]
    second.refresh_from_db()
    assert second.status == ActivationRequest.Status.PENDING_APPROVAL


def test_the_window_belongs_to_the_token_that_opened_it(
    approver, approver_device, approval_role, token_client
):
    (request,) = pending_requests(approval_role, 1)
    opener, other = token_client(approver), token_client(approver)
    opener.post("/api/v1/step-up/", {"otp_code": totp_code(approver_device)})

    response = decide(other, request)

    assert response.status_code == 400
    assert list(error(response)["fields"]) == ["otp_code"]
    assert other.get("/api/v1/step-up/").json() == {
        "open": False,
        "factor": None,
        "opened_at": None,
        "expires_at": None,
    }


def test_a_wrong_code_opens_no_window_and_is_audited(approver, approver_device, token_client):
    client = token_client(approver)
    wrong = "000000" if totp_code(approver_device) != "000000" else "111111"

    response = client.post("/api/v1/step-up/", {"otp_code": wrong})

    assert response.status_code == 400
    assert error(response)["fields"]["otp_code"] == ["That code is wrong or has already been used."]
    assert ApiToken.objects.get(user=approver).step_up_at is None
    assert AuditEvent.objects.filter(action="mfa.failed", actor_id=approver.pk).exists()
    assert not AuditEvent.objects.filter(action="api.step_up_opened").exists()


def test_a_code_used_to_open_a_window_cannot_be_used_again(
    approver, approver_device, approval_role, token_client, clock
):
    (request,) = pending_requests(approval_role, 1)
    code = totp_code(approver_device)
    opener, other = token_client(approver), token_client(approver)
    assert opener.post("/api/v1/step-up/", {"otp_code": code}).status_code == 200

    replayed_window = other.post("/api/v1/step-up/", {"otp_code": code})
    clock.shift(timedelta(seconds=2))  # past django-otp's back-off after the wrong try
    replayed_decision = decide(other, request, otp_code=code)

    assert replayed_window.status_code == 400
    assert replayed_decision.status_code == 400
    assert error(replayed_decision)["fields"]["otp_code"] == ["That code is wrong or has already been used."]
    assert ApiToken.objects.filter(user=approver, step_up_at__isnull=False).count() == 1  # the opener's


def test_a_window_is_refused_for_a_session_and_needs_one_proof(approver, approver_device, token_client):
    from .helpers import session_client

    session = session_client(approver, enforce_csrf=False)
    client = token_client(approver)

    assert session.post("/api/v1/step-up/", {}, content_type="application/json").status_code == 403
    neither = client.post("/api/v1/step-up/", {})
    both = client.post("/api/v1/step-up/", {"otp_code": totp_code(approver_device), "passkey": {"id": "x"}})
    assert neither.status_code == both.status_code == 400
    assert ApiToken.objects.get(user=approver).step_up_at is None


def test_a_passkey_challenge_needs_a_passkey(approver, token_client):
    response = token_client(approver).post("/api/v1/step-up/passkey-options/")

    assert response.status_code == 400
    assert "no passkey yet" in error(response)["fields"]["passkey"][0]


def test_a_passkey_answer_without_a_challenge_is_refused(approver, token_client):
    response = token_client(approver).post(
        "/api/v1/step-up/", {"passkey": {"id": "forged", "type": "public-key"}}
    )

    assert response.status_code == 400
    assert "expired or was already used" in error(response)["fields"]["passkey"][0]
    assert AuditEvent.objects.get(action="mfa.failed").details == {
        "method": "passkey",
        "reason": "no_challenge",
    }


# --- Phishing-resistant roles -------------------------------------------------------------


@pytest.fixture
def vault(requester):
    role = RoleFactory(name="Vault Administrator")
    RoleSettings.objects.filter(role=role).update(
        activation_authentication_strength=AuthenticationStrength.PHISHING_RESISTANT,
        approval_authentication_strength=AuthenticationStrength.PHISHING_RESISTANT,
    )
    return EligibleAssignmentFactory(user=requester, role=role)


def test_a_code_activation_of_a_phishing_resistant_role_is_refused_clearly(requester, vault, token_client):
    device = totp_device(requester)
    body = {"eligible": str(vault.pk), "duration": 3600, "justification": "Rotate keys"}

    response = token_client(requester).post(
        "/api/v1/activation-requests/", {**body, "otp_code": totp_code(device)}
    )

    assert response.status_code == 400
    message = error(response)["fields"]["otp_code"][0]
    assert message.startswith("Vault Administrator needs a passkey to activate")
    assert "phishing-resistant" in message and "an authenticator app code is not accepted" in message
    assert not ActivationRequest.objects.filter(requester=requester).exists()


def test_a_code_window_does_not_satisfy_a_phishing_resistant_role(requester, vault, token_client, clock):
    device = totp_device(requester)
    client = token_client(requester)
    client.post("/api/v1/step-up/", {"otp_code": totp_code(device)})
    body = {"eligible": str(vault.pk), "duration": 3600, "justification": "Rotate keys"}

    response = client.post("/api/v1/activation-requests/", body)

    assert response.status_code == 400
    assert "needs a passkey to activate" in error(response)["fields"]["otp_code"][0]


def test_a_passkey_window_activates_a_phishing_resistant_role(requester, vault, token_client):
    client = token_client(requester)
    # As POST /api/v1/step-up/ leaves it after a passkey assertion (made for real in the
    # browser test): the factor is what matters here.
    ApiToken.objects.filter(user=requester).update(step_up_at=timezone.now(), step_up_factor="passkey")
    body = {"eligible": str(vault.pk), "duration": 3600, "justification": "Rotate keys"}

    response = client.post("/api/v1/activation-requests/", body)

    assert response.status_code == 201, response.json()
    assert ActivationRequest.objects.get(requester=requester).mfa_factor == "passkey"


def test_a_code_window_is_refused_for_approving_a_phishing_resistant_role(
    approver, approver_device, token_client
):
    role = RoleFactory(name="Treasury Administrator")
    settings = RoleSettings.objects.get(role=role)
    settings.require_approval = True
    settings.approval_authentication_strength = AuthenticationStrength.PHISHING_RESISTANT
    settings.save()
    settings.approvers.set([approver])
    (request,) = pending_requests(role, 1)
    client = token_client(approver)
    client.post("/api/v1/step-up/", {"otp_code": totp_code(approver_device)})

    refused = decide(client, request)
    denied = decide(client, request, "deny")  # a denial grants nothing: any MFA will do

    assert refused.status_code == 400
    assert (
        "Approving requests for Treasury Administrator needs a passkey"
        in error(refused)["fields"]["otp_code"][0]
    )
    assert denied.status_code == 200
