import pytest
from django.core.exceptions import PermissionDenied
from django.utils import timezone

from accounts import services
from accounts.models import User
from audit.models import AuditEvent
from tests.factories import PASSWORD, ActiveAssignmentFactory

from .helpers import events_after, last_seq


def test_deactivation_ends_an_existing_session(verified_client, requester, admin):
    client = verified_client(requester)
    assert client.get("/accounts/mfa/").status_code == 200

    services.user_deactivate(actor=admin, user=requester, reason="Left the company")

    response = client.get("/accounts/mfa/")
    assert response.wsgi_request.user.is_anonymous
    assert response.url.startswith("/accounts/login/")


def test_deactivation_writes_exactly_one_event(requester, admin):
    seq = last_seq()

    services.user_deactivate(actor=admin, user=requester, reason="Left the company")

    requester.refresh_from_db()
    assert not requester.is_active
    assert requester.session_epoch == 1
    events = events_after(seq, action="user.deactivated")
    assert [(e.actor, e.target_label, e.details) for e in events] == [
        (admin, requester.label, {"reason": "Left the company"})
    ]


def test_deactivation_revokes_active_assignments(requester, admin):
    assignment = ActiveAssignmentFactory(user=requester)

    services.user_deactivate(actor=admin, user=requester, reason="Left the company")

    assignment.refresh_from_db()
    assert assignment.ended_at is not None and assignment.ended_at <= timezone.now()
    assert AuditEvent.objects.filter(action="active_assignment.revoked", actor=admin).count() == 1


def test_deactivating_twice_is_refused_clearly(requester, admin):
    services.user_deactivate(actor=admin, user=requester, reason="Left")

    with pytest.raises(services.AccountError, match="already deactivated"):
        services.user_deactivate(actor=admin, user=requester, reason="Left")
    assert AuditEvent.objects.filter(action="user.deactivated").count() == 1


def test_deactivation_needs_a_reason(requester, admin):
    with pytest.raises(services.AccountError, match="reason is required"):
        services.user_deactivate(actor=admin, user=requester, reason="   ")
    requester.refresh_from_db()
    assert requester.is_active


def test_outsider_cannot_deactivate_anyone(requester, outsider):
    with pytest.raises(PermissionDenied):
        services.user_deactivate(actor=outsider, user=requester, reason="Spite")
    requester.refresh_from_db()
    assert requester.is_active
    assert not AuditEvent.objects.filter(action="user.deactivated").exists()


def test_system_can_deactivate(requester, admin):
    services.user_deactivate(actor=None, user=requester, reason="Disabled in the directory")

    event = AuditEvent.objects.get(action="user.deactivated")
    assert (event.actor, event.actor_label) == (None, "system")


def test_deactivated_user_cannot_sign_in(client, requester, admin):
    services.user_deactivate(actor=admin, user=requester, reason="Left")

    response = client.post("/accounts/login/", {"username": requester.username, "password": PASSWORD})

    assert response.status_code == 200
    assert response.wsgi_request.user.is_anonymous
    assert AuditEvent.objects.filter(action="auth.sign_in_failed", target_label=requester.username).exists()


def test_reactivation_lets_the_user_sign_in_again_but_not_revive_old_sessions(
    verified_client, requester, admin, client
):
    old_session = verified_client(requester).cookies["sessionid"].value
    services.user_deactivate(actor=admin, user=requester, reason="Left")
    seq = last_seq()

    services.user_reactivate(actor=admin, user=requester, reason="Came back")

    [event] = events_after(seq)
    assert (event.action, event.actor, event.target_label) == ("user.reactivated", admin, requester.label)
    client.cookies["sessionid"] = old_session
    assert client.get("/accounts/mfa/").wsgi_request.user.is_anonymous
    response = client.post("/accounts/login/", {"username": requester.username, "password": PASSWORD})
    assert response.status_code == 302


def test_reactivating_an_active_user_is_refused(requester, admin):
    with pytest.raises(services.AccountError, match="already active"):
        services.user_reactivate(actor=admin, user=requester, reason="Why not")


def test_sign_in_is_audited(client, requester):
    client.post("/accounts/login/", {"username": requester.username, "password": PASSWORD})

    assert User.objects.get(pk=requester.pk).last_sign_in_at is not None
    assert AuditEvent.objects.filter(action="auth.sign_in", actor=requester).count() == 1


def test_login_page_renders(client):
    response = client.get("/accounts/login/?next=/accounts/mfa/")

    assert response.status_code == 200
    assert b'name="next" value="/accounts/mfa/"' in response.content


@pytest.mark.django_db
def test_a_created_person_has_no_usable_password_and_one_event():
    seq = last_seq()

    user = services.user_create(
        actor=None, username="carol", display_name="Carol", email="carol@example.com", origin={"via": "test"}
    )

    assert not user.has_usable_password() and user.is_active
    events = events_after(seq, action="user.created")
    assert [(e.target_label, e.details["via"], e.details["after"]["email"]) for e in events] == [
        (user.label, "test", "carol@example.com")
    ]


def test_a_taken_username_or_a_bad_email_creates_nobody(requester):
    with pytest.raises(services.AccountError):
        services.user_create(actor=None, username="REQUESTER")
    with pytest.raises(services.AccountError):
        services.user_create(actor=None, username="dave", email="not an address")
    assert not User.objects.filter(username__in=["REQUESTER", "dave"]).exists()


def test_only_those_who_may_add_people_create_them(outsider):
    with pytest.raises(PermissionDenied):
        services.user_create(actor=outsider, username="eve")
