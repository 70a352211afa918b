"""Single sign-on with OpenID Connect against a real provider on loopback (tests/oidc.py):
people are found by the subject alone, linked once, created just in time only when allowed,
refused when deactivated; SSO is the first factor only."""

import uuid

import pytest
from django.contrib.auth import SESSION_KEY

from accounts.models import ExternalIdentity, User
from accounts.services import SsoRefused, sso_sign_in_resolve
from accounts.sso import PROVIDER_MFA_SESSION_KEY
from audit.models import AuditEvent
from tests.factories import UserFactory
from tests.oidc import provider_user, sign_in_at_provider

ISSUER = "https://idp.example"
TENANT = "11111111-2222-3333-4444-555555555555"


def new_sub() -> str:
    return f"sub-{uuid.uuid4().hex[:12]}"


def link(user, sub, issuer=ISSUER):
    return ExternalIdentity.objects.create(user=user, issuer=issuer, subject=sub)


# --- Matching (the service) ----------------------------------------------------------------------


def test_links_by_subject_even_when_two_accounts_share_an_email(db):
    first = UserFactory(username="ann1", email="shared@example.com")
    second = UserFactory(username="ann2", email="shared@example.com")
    link(second, "subject-of-ann2")

    user = sso_sign_in_resolve(
        issuer=ISSUER,
        claims={"sub": "subject-of-ann2", "email": "shared@example.com", "preferred_username": "ann1"},
    )

    assert user == second and user != first


def test_an_email_or_username_match_never_links_an_unknown_subject(db):
    UserFactory(username="bob", email="bob@example.com")

    with pytest.raises(SsoRefused) as refusal:
        sso_sign_in_resolve(
            issuer=ISSUER, claims={"sub": "new", "email": "bob@example.com", "preferred_username": "bob"}
        )

    assert refusal.value.code == "not_linked"
    assert "not linked" in refusal.value.messages[0]
    assert not ExternalIdentity.objects.exists()
    event = AuditEvent.objects.get(action="auth.sso_refused")
    assert event.details["reason"] == "not_linked" and event.outcome == AuditEvent.Outcome.FAILURE


def test_the_same_subject_at_another_issuer_is_another_person(db):
    ann = UserFactory(username="ann")
    link(ann, "same-sub", issuer="https://other.example")

    with pytest.raises(SsoRefused):
        sso_sign_in_resolve(issuer=ISSUER, claims={"sub": "same-sub"})


def test_entra_sign_ins_match_the_object_id_in_the_tenant_not_sub(db, settings):
    settings.ENTRA_TENANT_ID = TENANT
    synced = UserFactory(username="carol@contoso.example", external_id="oid-carol")
    UserFactory(username="carol2", email="carol@contoso.example")

    user = sso_sign_in_resolve(
        issuer=f"https://login.microsoftonline.com/{TENANT}/v2.0",
        claims={"sub": "pairwise-sub", "oid": "oid-carol", "tid": TENANT, "email": "carol@contoso.example"},
    )

    assert user == synced
    identity = ExternalIdentity.objects.get(user=synced)
    assert (identity.subject, identity.tenant_id) == ("oid-carol", TENANT)
    assert AuditEvent.objects.get(action="sso.linked").details["via"] == "directory"


def test_an_object_id_from_another_tenant_does_not_reach_the_synced_person(db, settings):
    settings.ENTRA_TENANT_ID = TENANT
    UserFactory(username="dave", external_id="oid-dave")

    with pytest.raises(SsoRefused):
        sso_sign_in_resolve(
            issuer="https://login.microsoftonline.com/other/v2.0",
            claims={"sub": "x", "oid": "oid-dave", "tid": "99999999-0000-0000-0000-000000000000"},
        )


def test_a_configured_entra_tenant_refuses_other_tenants(db, settings):
    settings.PIM_OIDC_ENTRA_TENANT_ID = TENANT
    settings.PIM_OIDC_CREATE_USERS = True

    with pytest.raises(SsoRefused) as refusal:
        sso_sign_in_resolve(issuer=ISSUER, claims={"sub": "s", "oid": "o", "tid": "another-tenant"})

    assert refusal.value.code == "wrong_tenant"
    assert not User.objects.exists()


def test_just_in_time_creation_is_off_by_default(db, settings):
    assert settings.PIM_OIDC_CREATE_USERS is False
    with pytest.raises(SsoRefused):
        sso_sign_in_resolve(issuer=ISSUER, claims={"sub": "newcomer", "preferred_username": "newcomer"})
    assert not User.objects.filter(username="newcomer").exists()


def test_just_in_time_creation_takes_a_free_username(db, settings):
    settings.PIM_OIDC_CREATE_USERS = True
    UserFactory(username="erin")

    user = sso_sign_in_resolve(
        issuer=ISSUER, claims={"sub": "erin-sub", "preferred_username": "erin", "name": "Erin New"}
    )

    assert (user.username, user.display_name, user.has_usable_password()) == ("erin-2", "Erin New", False)
    assert ExternalIdentity.objects.get(user=user).subject == "erin-sub"
    assert AuditEvent.objects.filter(action="user.created", target_id=str(user.pk)).exists()


def test_a_deactivated_person_is_refused_with_a_clear_message(db):
    gone = UserFactory(username="gone", is_active=False)
    link(gone, "gone-sub")

    with pytest.raises(SsoRefused) as refusal:
        sso_sign_in_resolve(issuer=ISSUER, claims={"sub": "gone-sub"})

    assert "deactivated" in refusal.value.messages[0]
    assert AuditEvent.objects.get(action="auth.sso_refused").details["reason"] == "deactivated"


# --- The code flow against the loopback provider ----------------------------------------------


def test_sso_signs_in_a_linked_person_who_then_needs_the_portal_mfa(client, oidc_provider, requester):
    sub = new_sub()
    issuer = oidc_provider
    link(requester, sub, issuer=issuer)

    response = sign_in_at_provider(client, sub)

    assert response.status_code == 302
    assert client.session[SESSION_KEY] == str(requester.pk)
    assert AuditEvent.objects.get(action="auth.sign_in", actor=requester).details == {"method": "sso"}
    # SSO is the first factor only: My roles sends the person to the portal's own MFA.
    my_roles = client.get("/roles/")
    assert my_roles.status_code == 302 and my_roles["Location"].startswith(
        ("/accounts/verify/", "/accounts/mfa/enrol/")
    )


def test_sso_refuses_a_deactivated_person_and_says_so(client, oidc_provider, db):
    sub = new_sub()
    person = UserFactory(username="leaver", is_active=False)
    link(person, sub, issuer=oidc_provider)

    response = sign_in_at_provider(client, sub)

    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert SESSION_KEY not in client.session
    page = client.get("/accounts/login/")
    assert "deactivated" in page.content.decode()


def test_sso_with_jit_creates_the_person_at_first_sign_in(client, oidc_provider, settings, db):
    settings.PIM_OIDC_CREATE_USERS = True
    sub = new_sub()
    provider_user(oidc_provider, sub, email=f"{sub}@example.com", name="Fresh Person")

    sign_in_at_provider(client, sub)

    identity = ExternalIdentity.objects.select_related("user").get(subject=sub, issuer=oidc_provider)
    assert client.session[SESSION_KEY] == str(identity.user.pk)
    assert identity.user.display_name == "Fresh Person"


def test_an_unlinked_subject_is_refused_when_jit_is_off(client, oidc_provider, db):
    sub = new_sub()
    UserFactory(username=sub, email=sub)  # same name and email: still not this person

    sign_in_at_provider(client, sub)

    assert SESSION_KEY not in client.session
    assert "not linked" in client.get("/accounts/login/").content.decode()


def test_the_providers_mfa_counts_for_sign_in_only_when_trusted(client, oidc_provider, settings, requester):
    settings.PIM_OIDC_TRUST_MFA = True
    sub = new_sub()
    provider_user(oidc_provider, sub, amr=["pwd", "mfa"])
    link(requester, sub, issuer=oidc_provider)

    sign_in_at_provider(client, sub)

    assert client.session[PROVIDER_MFA_SESSION_KEY] == requester.pk
    assert client.get("/roles/").status_code == 200  # signed in, verified by the provider
    # ...but never a fresh step-up: a sensitive page still asks for the portal's code.
    response = client.get("/accounts/mfa/recovery-codes/")
    assert response.status_code == 302 and response["Location"].startswith("/accounts/")


def test_the_providers_mfa_is_ignored_unless_trusted(client, oidc_provider, requester):
    sub = new_sub()
    provider_user(oidc_provider, sub, amr=["mfa"])
    link(requester, sub, issuer=oidc_provider)

    sign_in_at_provider(client, sub)

    assert PROVIDER_MFA_SESSION_KEY not in client.session
    assert client.get("/roles/").status_code == 302


def test_an_unreachable_provider_is_said_plainly(client, settings, db):
    from accounts.sso import discovery_forget

    settings.PIM_OIDC_DISCOVERY_URL = "http://127.0.0.1:9/.well-known/openid-configuration"
    settings.PIM_OIDC_ENABLED = True
    settings.OIDC_TIMEOUT = 1
    discovery_forget()

    response = client.get("/accounts/sso/start/", follow=True)

    assert "unavailable" in response.content.decode()
    discovery_forget()


def test_password_login_off_refuses_passwords(client, settings, requester):
    settings.PIM_PASSWORD_LOGIN = "off"
    response = client.post("/accounts/login/", {"username": requester.username, "password": "x"}, follow=True)
    assert "turned off" in response.content.decode()
    assert SESSION_KEY not in client.session


def test_password_login_break_glass_only_refuses_everyone_else(client, settings, requester):
    from tests.factories import PASSWORD

    settings.PIM_PASSWORD_LOGIN = "break-glass-only"
    response = client.post("/accounts/login/", {"username": requester.username, "password": PASSWORD})
    assert response.status_code == 200 and SESSION_KEY not in client.session

    root = UserFactory(username="root", is_superuser=True)
    response = client.post("/accounts/login/", {"username": root.username, "password": PASSWORD})
    assert response.status_code == 302 and client.session[SESSION_KEY] == str(root.pk)


def test_an_sso_invitation_links_the_providers_account_to_the_invited_person(
    client, oidc_provider, admin, verified_client, django_capture_on_commit_callbacks
):
    import re

    from django.core import mail
    from django.test import Client

    with django_capture_on_commit_callbacks(execute=True):
        verified_client(admin).post(
            "/manage/people/invite/", {"username": "invitee", "email": "invitee@example.com", "kind": "sso"}
        )
    invitee = User.objects.get(username="invitee")
    link_path = "/" + re.search(r"https?://\S+", mail.outbox[0].body).group(0).split("/", 3)[3]
    browser = Client()
    assert browser.get(link_path)["Location"] == "/accounts/sso/start/"
    sub = new_sub()

    sign_in_at_provider(browser, sub)

    assert browser.session[SESSION_KEY] == str(invitee.pk)
    identity = ExternalIdentity.objects.get(user=invitee)
    assert (identity.issuer, identity.subject) == (oidc_provider, sub)
    assert AuditEvent.objects.get(action="sso.linked").details["via"] == "invitation"
    # The link worked once.
    assert "no longer valid" in Client().get(link_path, follow=True).content.decode()


def test_a_client_assertion_is_signed_with_the_certificate(settings):
    from datetime import UTC, datetime, timedelta

    import jwt
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    from accounts.sso import client_assertion

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pim")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    pem = (
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        + certificate.public_bytes(serialization.Encoding.PEM)
    ).decode()
    settings.OIDC_RP_CLIENT_ID = "client-123"

    assertion = client_assertion(pem, audience="https://idp.example/token")

    claims = jwt.decode(
        assertion, key.public_key(), algorithms=["RS256"], audience="https://idp.example/token"
    )
    assert claims["iss"] == claims["sub"] == "client-123"
    assert "x5t" in jwt.get_unverified_header(assertion)


def test_the_system_check_explains_an_unusable_set_up(settings):
    from accounts.checks import sign_in_settings_check

    settings.PIM_OIDC_ENABLED = True
    settings.PIM_OIDC_DISCOVERY_URL = "https://idp.example/.well-known/openid-configuration"
    settings.OIDC_RP_CLIENT_ID = ""
    settings.OIDC_RP_CLIENT_SECRET = ""
    settings.PIM_OIDC_CLIENT_CERTIFICATE = ""
    assert {error.id for error in sign_in_settings_check(None)} == {"accounts.E001", "accounts.E002"}

    settings.PIM_OIDC_ENABLED = False
    settings.PIM_PASSWORD_LOGIN = "off"
    assert [error.id for error in sign_in_settings_check(None)] == ["accounts.E004"]
