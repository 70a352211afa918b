"""People for PIM Administrators (/manage/people/): list and search, invite, edit, deactivate,
reactivate, reset MFA; each through an accounts service, audited, with a fresh step-up."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import SESSION_KEY
from django.core import mail
from django.test import Client
from django_otp.plugins.otp_static.models import StaticDevice
from django_otp.plugins.otp_totp.models import TOTPDevice
from django_otp_webauthn.models import WebAuthnCredential

from accounts.models import User
from accounts.services import mfa_recovery_codes_regenerate
from accounts.tests.helpers import events_after, last_seq
from tests.factories import PASSWORD, UserFactory, totp_code, totp_device

NOON = datetime(2026, 3, 2, 12, 0, 5, tzinfo=UTC)
CLOCK_START = NOON
pytestmark = pytest.mark.usefixtures("clock")


def test_the_list_pages_and_searches_in_a_fixed_number_of_queries(
    admin, verified_client, django_assert_max_num_queries
):
    boss = UserFactory(username="boss")
    for n in range(60):
        person = UserFactory(username=f"person{n:02d}", display_name=f"Person {n}", manager=boss)
        totp_device(person)
    client = verified_client(admin)

    with django_assert_max_num_queries(12):
        first = client.get("/manage/people/")
    with django_assert_max_num_queries(12):
        second = client.get("/manage/people/?page=2")

    assert first.status_code == 200 and len(first.context["people"]) == 50
    assert len(second.context["people"]) > 0
    found = client.get("/manage/people/?q=PERSON07")
    assert [p.username for p in found.context["people"]] == ["person07"]
    assert "boss" in first.content.decode()


@pytest.mark.parametrize("path", ["/manage/people/", "/manage/people/invite/"])
def test_someone_without_the_active_role_is_refused(outsider, verified_client, path):
    assert verified_client(outsider).get(path).status_code == 403


def test_an_auditor_sees_no_people_pages(auditor, verified_client):
    assert verified_client(auditor).get("/manage/people/").status_code == 403


def test_a_stranger_cannot_act_on_a_person(outsider, requester, verified_client):
    client = verified_client(outsider)
    response = client.post(f"/manage/people/{requester.pk}/deactivate/", {"reason": "x"})
    assert response.status_code == 403
    requester.refresh_from_db()
    assert requester.is_active


def test_changes_need_a_fresh_step_up(admin, requester, verified_client, clock):
    client = verified_client(admin)
    clock.shift(timedelta(minutes=10))
    response = client.post(f"/manage/people/{requester.pk}/deactivate/", {"reason": "leaving"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/verify/")
    requester.refresh_from_db()
    assert requester.is_active


def test_invite_with_a_password_link_then_enrolment(
    admin, verified_client, approver, django_capture_on_commit_callbacks
):
    client = verified_client(admin)
    seq = last_seq()

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/manage/people/invite/",
            {
                "username": "newbie",
                "email": "newbie@example.com",
                "display_name": "New Bie",
                "manager": "approver",
                "kind": "password",
            },
        )

    newbie = User.objects.get(username="newbie")
    assert response.status_code == 302
    assert (newbie.manager, newbie.has_usable_password()) == (approver, False)
    assert [e.action for e in events_after(seq)] == ["user.created", "user.changed", "user.invited"]
    [message] = mail.outbox
    link = re.search(r"https?://\S+", message.body).group(0)
    path = link.split("://", 1)[1].split("/", 1)[1]

    invitee = Client()
    page = invitee.get(f"/{path}")
    assert page.status_code == 200 and "Choose your password" in page.content.decode()
    weak = invitee.post(f"/{path}", {"password1": "short", "password2": "short"})
    assert weak.status_code == 200 and not User.objects.get(pk=newbie.pk).has_usable_password()
    done = invitee.post(
        f"/{path}", {"password1": "a-long-new-passphrase", "password2": "a-long-new-passphrase"}
    )
    assert done.status_code == 302 and done["Location"] == "/accounts/mfa/enrol/"
    assert invitee.session[SESSION_KEY] == str(newbie.pk)
    # The link works once.
    again = Client().get(f"/{path}", follow=True)
    assert "no longer valid" in again.content.decode()


def test_an_sso_invitation_needs_sso_configured(admin, verified_client):
    response = verified_client(admin).post(
        "/manage/people/invite/", {"username": "s", "email": "s@example.com", "kind": "sso"}
    )
    assert response.status_code == 200 and "not configured" in response.content.decode()
    assert not User.objects.filter(username="s").exists()


def test_a_taken_username_is_refused_and_nothing_changes(admin, requester, verified_client):
    seq = last_seq()
    response = verified_client(admin).post(
        "/manage/people/invite/", {"username": "REQUESTER", "email": "x@example.com", "kind": "password"}
    )
    assert response.status_code == 200 and "is taken" in response.content.decode()
    assert not mail.outbox
    assert not events_after(seq, action="user.invited")


def test_edit_the_display_name_and_manager(admin, requester, approver, verified_client):
    client = verified_client(admin)
    seq = last_seq()

    response = client.post(
        f"/manage/people/{requester.pk}/", {"display_name": "Rita R.", "manager": "approver"}
    )

    assert response.status_code == 302
    requester.refresh_from_db()
    assert (requester.display_name, requester.manager) == ("Rita R.", approver)
    [event] = events_after(seq, action="user.changed")
    assert event.actor == admin


def test_an_unknown_manager_is_a_form_error(admin, requester, verified_client):
    response = verified_client(admin).post(
        f"/manage/people/{requester.pk}/", {"display_name": "", "manager": "ghost"}
    )
    assert response.status_code == 200 and "nobody with the username ghost" in response.content.decode()


def test_deactivate_and_reactivate(admin, requester, verified_client):
    client = verified_client(admin)
    client.post(f"/manage/people/{requester.pk}/deactivate/", {"reason": "left the company"})
    requester.refresh_from_db()
    assert not requester.is_active

    client.post(f"/manage/people/{requester.pk}/reactivate/", {"reason": "came back"})
    requester.refresh_from_db()
    assert requester.is_active


def test_an_action_without_a_reason_changes_nothing(admin, requester, verified_client):
    response = verified_client(admin).post(
        f"/manage/people/{requester.pk}/deactivate/", {"reason": " "}, follow=True
    )
    requester.refresh_from_db()
    assert requester.is_active and "reason is required" in response.content.decode()


def test_reset_mfa_removes_devices_and_ends_sessions(admin, requester, verified_client):
    their_client = Client()
    device = totp_device(requester)
    mfa_recovery_codes_regenerate(user=requester)
    WebAuthnCredential.objects.create(
        user=requester, name="Key", credential_id=b"\x01" * 16, public_key=b"\x02" * 16, sign_count=0
    )
    their_client.post("/accounts/login/", {"username": requester.username, "password": PASSWORD})
    their_client.post("/accounts/verify/", {"otp_token": totp_code(device)})
    assert their_client.get("/roles/").status_code == 200
    seq = last_seq()

    verified_client(admin).post(f"/manage/people/{requester.pk}/reset-mfa/", {"reason": "lost phone"})

    assert not TOTPDevice.objects.filter(user=requester).exists()
    assert not StaticDevice.objects.filter(user=requester).exists()
    assert not WebAuthnCredential.objects.filter(user=requester).exists()  # passkeys too
    assert their_client.get("/roles/").status_code == 302  # signed out
    [event] = events_after(seq, action="mfa.reset")
    assert event.actor == admin and event.details["reason"] == "lost phone"
    assert event.details["passkeys"] == 1
    # At the next sign-in they enrol a new authenticator.
    response = their_client.post("/accounts/login/", {"username": requester.username, "password": PASSWORD})
    assert response["Location"].startswith("/accounts/mfa/enrol/")


def test_an_admin_cannot_reset_their_own_mfa_here(admin, verified_client):
    response = verified_client(admin).post(
        f"/manage/people/{admin.pk}/reset-mfa/", {"reason": "x"}, follow=True
    )
    assert TOTPDevice.objects.filter(user=admin).exists()
    assert "your own" in response.content.decode()
