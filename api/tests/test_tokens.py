"""API tokens: the services, the pages on the person's profile, and manage.py api_token."""

import hashlib
from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import PermissionDenied
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from accounts.models import User
from api.models import ApiToken
from api.services import TokenError, api_token_create, api_token_revoke
from audit.models import AuditEvent
from tests.factories import totp_device

from .helpers import session_client

pytestmark = pytest.mark.django_db


# --- Services --------------------------------------------------------------------------------


def test_a_token_is_stored_as_a_hash_and_its_secret_never_reaches_the_log(requester):
    token, secret = api_token_create(actor=requester, user=requester, name="deploy script")

    assert secret.startswith(f"pim_{token.prefix}_") and len(secret) > 50
    assert token.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    event = AuditEvent.objects.get(action="api_token.created")
    assert event.actor_id == requester.pk and event.target_id == str(token.pk)
    assert event.details["prefix"] == token.prefix
    assert secret not in str(event.details) and secret.split("_", 2)[2] not in event.hash


def test_revoking_is_audited_and_happens_once(requester):
    token, _ = api_token_create(actor=requester, user=requester, name="laptop")

    api_token_revoke(actor=requester, token=token)
    with pytest.raises(TokenError, match="already revoked"):
        api_token_revoke(actor=requester, token=token)

    assert AuditEvent.objects.filter(action="api_token.revoked", target_id=str(token.pk)).count() == 1


def test_nobody_makes_or_revokes_tokens_for_someone_else(requester, admin):
    token, _ = api_token_create(actor=requester, user=requester, name="mine")

    with pytest.raises(PermissionDenied):
        api_token_create(actor=admin, user=requester, name="theirs")
    with pytest.raises(PermissionDenied):
        api_token_revoke(actor=admin, token=token)


@pytest.mark.parametrize(("name", "field"), [("", "name"), ("x" * 101, "name"), ("bad\x07", "name")])
def test_a_token_needs_a_clean_name(requester, name, field):
    with pytest.raises(Exception) as raised:
        api_token_create(actor=requester, user=requester, name=name)

    assert field in raised.value.message_dict


def test_an_expiry_in_the_past_is_refused(requester):
    with pytest.raises(TokenError):
        api_token_create(actor=requester, user=requester, name="late", expires_at=timezone.now())


# --- Pages -----------------------------------------------------------------------------------


def test_the_tokens_page_lists_my_tokens_only_without_secrets(requester, outsider):
    api_token_create(actor=requester, user=requester, name="<b>build</b> box")
    api_token_create(actor=outsider, user=outsider, name="outsider token")

    page = session_client(requester, enforce_csrf=False).get("/api/tokens/").content.decode()

    assert "&lt;b&gt;build&lt;/b&gt; box" in page
    assert "outsider token" not in page


def test_making_a_token_needs_a_fresh_step_up(requester):
    stale = session_client(requester, enforce_csrf=False, stepped_up_at=timezone.now() - timedelta(hours=1))

    response = stale.post("/api/tokens/new/", {"name": "ci", "expires_in_days": "30"})

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/verify/")
    assert not ApiToken.objects.exists()


def test_a_new_token_is_shown_once_and_works(requester, anonymous):
    client = session_client(requester, enforce_csrf=False, stepped_up_at=timezone.now())

    response = client.post("/api/tokens/new/", {"name": "ci", "expires_in_days": "30"})

    token = ApiToken.objects.get(user=requester)
    secret = response.context["secret"]
    assert secret in response.content.decode()
    assert response["Cache-Control"].startswith("max-age=0")
    assert token.expires_at == token.created_at + timedelta(days=30)
    assert secret not in client.get("/api/tokens/").content.decode()
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert anonymous.get("/api/v1/me/eligibilities/").status_code == 200


def test_a_token_without_expiry_can_be_made(requester):
    client = session_client(requester, enforce_csrf=False, stepped_up_at=timezone.now())

    client.post("/api/tokens/new/", {"name": "forever", "expires_in_days": ""})

    assert ApiToken.objects.get(user=requester).expires_at is None


def test_revoking_is_a_post_of_the_owner(requester, outsider):
    token, _ = api_token_create(actor=requester, user=requester, name="old")
    url = f"/api/tokens/{token.pk}/revoke/"

    assert session_client(requester, enforce_csrf=False).get(url).status_code == 405
    assert session_client(outsider, enforce_csrf=False).post(url).status_code == 404
    response = session_client(requester, enforce_csrf=False).post(url)

    assert response.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_the_token_pages_need_a_verified_session(requester, client):
    assert client.get("/api/tokens/")["Location"].startswith("/accounts/login/")
    totp_device(requester)
    password_only = session_client(requester, verified=False)
    assert password_only.get("/api/tokens/")["Location"].startswith("/accounts/verify/")


# --- manage.py api_token ---------------------------------------------------------------------


def run(*args) -> str:
    out = StringIO()
    call_command("api_token", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_the_command_makes_a_service_account_that_can_check_roles(anonymous, requester):
    output = run("create", "--user", "svc-deploy", "--name", "deploy gate", "--service-account", "--checker")

    secret = output.strip().splitlines()[-1]
    account = User.objects.get(username="svc-deploy")
    assert not account.has_usable_password()
    anonymous.credentials(HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert anonymous.get("/api/v1/check/", {"user": "requester", "role": "pim.auditor"}).status_code == 200
    assert AuditEvent.objects.filter(action="user.created", target_id=str(account.pk)).exists()
    assert AuditEvent.objects.filter(action="active_assignment.created", actor=None).exists()


def test_the_command_is_idempotent_about_the_account_and_role(requester):
    run("create", "--user", "svc", "--name", "one", "--service-account", "--checker")
    run("create", "--user", "svc", "--name", "two", "--service-account", "--checker")

    assert ApiToken.objects.filter(user__username="svc").count() == 2
    assert User.objects.filter(username="svc").count() == 1


def test_the_command_lists_and_revokes_by_prefix(requester):
    token, secret = api_token_create(actor=None, user=requester, name="script")

    listing = run("list", "--user", "requester")
    run("revoke", token.prefix)

    assert token.prefix in listing and secret not in listing and "active" in listing
    token.refresh_from_db()
    assert token.revoked_at is not None


def test_the_command_refuses_unknown_users_and_tokens(db):
    with pytest.raises(CommandError, match="No user nobody"):
        run("create", "--user", "nobody", "--name", "x")
    with pytest.raises(CommandError, match="No token"):
        run("revoke", "not-a-token")
