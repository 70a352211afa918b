"""Who the API believes the caller is: bearer tokens and the portal's verified session."""

from datetime import timedelta

import pytest
from django.utils import timezone

from accounts.services import user_deactivate
from api.models import ApiToken
from api.services import api_token_revoke

from .helpers import error, session_client

pytestmark = pytest.mark.django_db

SOME_ID = "00000000-0000-4000-8000-000000000001"
ENDPOINTS = [
    ("get", "/api/v1/roles/"),
    ("get", f"/api/v1/roles/{SOME_ID}/"),
    ("get", "/api/v1/me/eligibilities/"),
    ("post", f"/api/v1/me/eligibilities/{SOME_ID}/extend/"),
    ("post", f"/api/v1/me/eligibilities/{SOME_ID}/renew/"),
    ("get", "/api/v1/me/active-assignments/"),
    ("get", "/api/v1/activation-requests/"),
    ("post", "/api/v1/activation-requests/"),
    ("get", f"/api/v1/activation-requests/{SOME_ID}/"),
    ("post", f"/api/v1/activation-requests/{SOME_ID}/cancel/"),
    ("post", f"/api/v1/activation-requests/{SOME_ID}/deactivate/"),
    ("get", "/api/v1/approvals/"),
    ("post", f"/api/v1/approvals/{SOME_ID}/decision/"),
    ("get", "/api/v1/audit-events/"),
    ("get", "/api/v1/check/?user=requester&role=pim.administrator"),
]


@pytest.mark.parametrize(("method", "url"), ENDPOINTS)
def test_anonymous_caller_gets_401_in_the_error_shape_everywhere(anonymous, method, url):
    response = getattr(anonymous, method)(url, {} if method == "post" else None)

    assert response.status_code == 401
    assert error(response)["code"] == "not_authenticated"
    assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_valid_token_acts_as_its_user_and_records_its_use(requester, token_client):
    client = token_client(requester)

    response = client.get("/api/v1/me/eligibilities/")

    assert response.status_code == 200
    assert ApiToken.objects.get(user=requester).last_used_at is not None


def test_token_use_is_written_at_most_once_a_minute(requester, token_client, time_machine):
    time_machine.move_to(timezone.now(), tick=False)
    client = token_client(requester)
    client.get("/api/v1/me/eligibilities/")
    first = ApiToken.objects.get(user=requester).last_used_at

    time_machine.shift(timedelta(seconds=59))
    client.get("/api/v1/me/eligibilities/")
    assert ApiToken.objects.get(user=requester).last_used_at == first

    time_machine.shift(timedelta(seconds=2))
    client.get("/api/v1/me/eligibilities/")
    assert ApiToken.objects.get(user=requester).last_used_at == first + timedelta(seconds=61)


def test_an_expired_token_gets_401_from_the_second_it_expires(requester, token_client, time_machine):
    expires_at = timezone.now() + timedelta(days=1)
    client = token_client(requester, expires_at=expires_at)

    time_machine.move_to(expires_at - timedelta(seconds=1), tick=False)
    assert client.get("/api/v1/roles/").status_code == 200
    time_machine.move_to(expires_at, tick=False)
    response = client.get("/api/v1/roles/")

    assert response.status_code == 401
    assert error(response) == {
        "code": "authentication_failed",
        "message": "This token is invalid, expired or revoked.",
        "fields": {},
    }


def test_a_revoked_token_gets_401(requester, token_client):
    client = token_client(requester)
    api_token_revoke(actor=requester, token=ApiToken.objects.get(user=requester))

    assert client.get("/api/v1/roles/").status_code == 401


@pytest.mark.parametrize(
    "mangle",
    [
        lambda secret: secret[:-1] + ("A" if secret[-1] != "A" else "B"),  # tampered secret
        lambda secret: secret.replace("pim_", "pam_"),
        lambda secret: secret.split("_")[0] + "_" + secret.split("_")[1],  # no secret
        lambda secret: "pim_0123456789ab_" + secret.split("_", 2)[2],  # another prefix
        lambda secret: secret + "x" * 300,
        lambda secret: "",
    ],
)
def test_a_tampered_or_malformed_token_gets_401(requester, token_client, anonymous, mangle):
    secret = token_client(requester).secret
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {mangle(secret)}")

    response = anonymous.get("/api/v1/roles/")

    assert response.status_code == 401
    assert error(response)["code"] == "authentication_failed"


def test_a_deactivated_persons_token_gets_401(requester, token_client):
    client = token_client(requester)
    user_deactivate(actor=None, user=requester, reason="Left the company")

    assert client.get("/api/v1/roles/").status_code == 401


def test_a_verified_portal_session_can_read_the_api(requester):
    client = session_client(requester)

    assert client.get("/api/v1/me/eligibilities/").status_code == 200


def test_a_password_only_session_is_not_signed_in_for_the_api(requester):
    client = session_client(requester, verified=False)

    response = client.get("/api/v1/me/eligibilities/")

    assert response.status_code == 401


def test_a_session_write_without_the_csrf_token_is_refused(requester):
    client = session_client(requester)

    response = client.post(
        "/api/v1/activation-requests/", {"eligible": SOME_ID}, content_type="application/json"
    )

    assert response.status_code == 403
    assert "CSRF" in error(response)["message"]


def test_a_session_write_with_the_csrf_token_is_accepted(requester):
    client = session_client(requester)
    client.get("/api/tokens/")  # any portal page with a form sets the CSRF cookie
    token = client.cookies["csrftoken"].value

    response = client.post(
        "/api/v1/activation-requests/",
        {"eligible": SOME_ID, "duration": 3600},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=token,
    )

    assert response.status_code == 400  # past CSRF and authentication: the input is judged
    assert error(response)["fields"] == {"eligible": ["You are not eligible for this role (any more)."]}
