"""The passkey pages and their JSON ceremony endpoints (the ceremonies themselves, with a
real authenticator: tests/browser/test_passkey_journey.py)."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django_otp_webauthn.models import WebAuthnCredential

from audit.models import AuditEvent
from tests.factories import totp_device

from .helpers import sign_in_password

NOON = datetime(2026, 3, 2, 12, 0, 5, tzinfo=UTC)
CLOCK_START = NOON

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


def passkey(user, name="Key", n=1) -> WebAuthnCredential:
    return WebAuthnCredential.objects.create(
        user=user, name=name, credential_id=bytes([n]) * 16, public_key=b"\x02" * 16, sign_count=0
    )


def post_json(client, url, body=None):
    return client.post(url, json.dumps(body or {}), content_type="application/json")


def test_the_security_page_lists_only_my_passkeys_escaped(verified_client, requester, outsider):
    passkey(requester, name="<b>Laptop</b>")
    passkey(outsider, name="Someone else's", n=2)

    response = verified_client(requester).get("/accounts/mfa/")

    assert b"&lt;b&gt;Laptop&lt;/b&gt;" in response.content
    assert b"Someone else" not in response.content


def test_removing_a_passkey_is_audited_and_ends_the_other_sessions(verified_client, requester):
    key = passkey(requester, name="Old key")
    other = Client()
    other.force_login(requester)
    assert other.get("/accounts/mfa/").status_code in (200, 302)
    client = verified_client(requester)

    response = client.post("/accounts/mfa/", {"passkey": key.pk})

    assert response.status_code == 302
    assert not WebAuthnCredential.objects.filter(pk=key.pk).exists()
    event = AuditEvent.objects.get(action="mfa.passkey_removed")
    assert (event.actor_id, event.details) == (requester.pk, {"device": "Old key", "sessions_ended": True})
    assert client.get("/accounts/mfa/").status_code == 200  # this session stays
    assert other.get("/accounts/mfa/")["Location"].startswith("/accounts/login/")  # the other ended


def test_someone_elses_passkey_cannot_be_removed(verified_client, requester, outsider):
    key = passkey(outsider)

    response = verified_client(requester).post("/accounts/mfa/", {"passkey": key.pk})

    assert response.status_code == 404
    assert WebAuthnCredential.objects.filter(pk=key.pk).exists()


def test_removing_a_passkey_needs_a_fresh_step_up(verified_client, requester, clock, settings):
    key = passkey(requester)
    client = verified_client(requester)
    clock.shift(settings.PIM_STEP_UP_WINDOW + timedelta(seconds=1))

    response = client.post("/accounts/mfa/", {"passkey": key.pk})

    assert response.url.startswith("/accounts/verify/")
    assert WebAuthnCredential.objects.filter(pk=key.pk).exists()


def test_adding_a_passkey_needs_a_fresh_step_up(verified_client, requester, clock, settings):
    client = verified_client(requester)
    assert post_json(client, "/accounts/mfa/passkeys/register/begin/").status_code == 200
    clock.shift(settings.PIM_STEP_UP_WINDOW + timedelta(seconds=1))

    page = client.get("/accounts/mfa/passkeys/add/")
    begin = post_json(client, "/accounts/mfa/passkeys/register/begin/")

    assert page.url.startswith("/accounts/verify/")
    assert begin.status_code == 403
    assert begin.json()["redirect"] == "/accounts/verify/?next=%2Faccounts%2Fmfa%2Fpasskeys%2Fadd%2F"


def test_registration_options_name_the_relying_party_and_exclude_my_passkeys(
    verified_client, requester, settings
):
    settings.OTP_WEBAUTHN_RP_ID, settings.OTP_WEBAUTHN_RP_NAME = "pim.example.org", "Example PIM"
    passkey(requester)

    options = post_json(verified_client(requester), "/accounts/mfa/passkeys/register/begin/").json()

    assert options["rp"] == {"id": "pim.example.org", "name": "Example PIM"}
    assert len(options["excludeCredentials"]) == 1


def test_a_registration_answer_without_a_ceremony_is_refused(verified_client, requester):
    response = post_json(
        verified_client(requester),
        "/accounts/mfa/passkeys/register/complete/",
        {"name": "Key", "credential": {}},
    )

    assert response.status_code == 400
    assert "start again" in response.json()["error"]
    assert not WebAuthnCredential.objects.exists()


def test_a_registration_needs_a_name(verified_client, requester):
    client = verified_client(requester)
    post_json(client, "/accounts/mfa/passkeys/register/begin/")

    response = post_json(
        client, "/accounts/mfa/passkeys/register/complete/", {"name": "  ", "credential": {}}
    )

    assert response.status_code == 400
    assert "Give the passkey a name" in response.json()["error"]


def test_a_forged_registration_answer_is_refused(verified_client, requester):
    client = verified_client(requester)
    post_json(client, "/accounts/mfa/passkeys/register/begin/")
    forged = {"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": {}}

    response = post_json(
        client, "/accounts/mfa/passkeys/register/complete/", {"name": "Key", "credential": forged}
    )

    assert response.status_code == 400
    assert "did not check out" in response.json()["error"]
    assert not WebAuthnCredential.objects.exists()


def test_verifying_needs_a_passkey(client, requester):
    totp_device(requester)
    sign_in_password(client, requester)

    response = post_json(client, "/accounts/mfa/passkeys/verify/begin/")

    assert response.status_code == 400
    assert "no passkey yet" in response.json()["error"]


def test_a_verification_options_list_only_my_passkeys_and_require_user_verification(
    client, requester, outsider
):
    totp_device(requester)
    mine = passkey(requester)
    passkey(outsider, n=2)
    sign_in_password(client, requester)

    options = post_json(client, "/accounts/mfa/passkeys/verify/begin/").json()

    mine_id = base64.urlsafe_b64encode(bytes(mine.credential_id)).decode().rstrip("=")
    assert [c["id"] for c in options["allowCredentials"]] == [mine_id]
    assert options["userVerification"] == "required"


def test_a_verification_answer_is_single_use(client, requester):
    totp_device(requester)
    passkey(requester)
    sign_in_password(client, requester)
    post_json(client, "/accounts/mfa/passkeys/verify/begin/")
    forged = {"id": "AAAA", "rawId": "AAAA", "type": "public-key", "response": {}}

    first = post_json(client, "/accounts/mfa/passkeys/verify/complete/", {"credential": forged})
    again = post_json(client, "/accounts/mfa/passkeys/verify/complete/", {"credential": forged})

    assert first.status_code == again.status_code == 400
    assert "could not be checked" in first.json()["error"]
    assert "expired or was already used" in again.json()["error"]
    reasons = [e.details["reason"] for e in AuditEvent.objects.filter(action="mfa.failed").order_by("seq")]
    assert reasons == ["wrong_passkey", "no_challenge"]
    assert "pim_mfa_verified_at" not in client.session


def test_the_ceremony_endpoints_refuse_anonymous_and_get(client):
    for url in ("/accounts/mfa/passkeys/verify/begin/", "/accounts/mfa/passkeys/register/begin/"):
        assert post_json(client, url).status_code == 302  # to sign-in
        assert client.get(url).status_code == 405


def test_the_verify_page_offers_a_passkey_only_to_those_who_have_one(client, requester):
    totp_device(requester)
    sign_in_password(client, requester)
    assert b"Use a passkey" not in client.get("/accounts/verify/").content

    passkey(requester)
    response = client.get("/accounts/verify/")

    assert b"Use a passkey" in response.content and b"js/passkeys.js" in response.content
