"""The admin for people and groups: every change through accounts.services."""

import pytest
from django.contrib.admin import helpers
from django.test import Client
from django.urls import reverse

from accounts.models import DirectoryGroup, User
from accounts.tests.helpers import events_after, last_seq
from audit.models import AuditEvent
from roles.selectors import portal_role, user_holds_role
from tests.factories import (
    PASSWORD,
    ActiveAssignmentFactory,
    DirectoryGroupFactory,
    EligibleAssignmentFactory,
    RoleFactory,
    UserFactory,
    totp_code,
    totp_device,
)

pytestmark = pytest.mark.django_db

USERS = reverse("admin:accounts_user_changelist")
GROUPS = reverse("admin:accounts_directorygroup_changelist")


def user_change_url(user):
    return reverse("admin:accounts_user_change", args=[user.pk])


def group_change_url(group):
    return reverse("admin:accounts_directorygroup_change", args=[group.pk])


def signed_in(user) -> Client:
    """A second browser, signed in and verified through the real forms."""
    client = Client()
    device = totp_device(user)
    client.post("/accounts/login/", {"username": user.username, "password": PASSWORD})
    assert client.post("/accounts/verify/", {"otp_token": totp_code(device)}).status_code == 302
    return client


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def user_form(user, **overrides):
    data = {
        "display_name": user.display_name,
        "email": user.email,
        "manager": user.manager_id or "",
    }
    data.update(overrides)
    return data


def group_form(group, **overrides):
    data = {
        "name": group.name,
        "description": group.description,
        "members": [user.pk for user in group.members.all()],
    }
    data.update(overrides)
    return data


def action(name, *users, **extra):
    return {"action": name, helpers.ACTION_CHECKBOX_NAME: [u.pk for u in users], "index": 0, **extra}


def confirm(name, *users, reason):
    return {
        "action": name,
        helpers.ACTION_CHECKBOX_NAME: [u.pk for u in users],
        "confirm": "yes",
        "reason": reason,
    }


# --- People --------------------------------------------------------------------------------


def test_pim_administrator_lists_and_searches_people(admin, requester, outsider, verified_client):
    client = verified_client(admin)
    page = client.get(USERS, {"q": "Rita"}).content.decode()
    assert "Rita Requester" in page and "Otto Outsider" not in page


def test_nobody_adds_or_deletes_people_in_the_admin(admin, requester, verified_client):
    client = verified_client(admin)
    assert client.get(reverse("admin:accounts_user_add")).status_code == 403
    delete = reverse("admin:accounts_user_delete", args=[requester.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert User.objects.filter(pk=requester.pk).exists()


def test_editing_a_person_goes_through_user_update(admin, requester, approver, verified_client):
    client = verified_client(admin)
    seq = last_seq()
    data = user_form(requester, display_name="Rita R.", manager=approver.pk)
    # fields that are not editable here are ignored, whatever is posted
    data.update(username="root", is_superuser="on", is_active="")
    response = client.post(user_change_url(requester), data)
    assert response.status_code == 302
    requester.refresh_from_db()
    assert requester.display_name == "Rita R." and requester.manager == approver
    assert requester.username == "requester" and not requester.is_superuser and requester.is_active
    events = events_after(seq)
    assert [e.action for e in events] == ["user.changed"]
    assert events[0].actor == admin
    assert events[0].details["changes"] == {
        "display_name": {"before": "Rita Requester", "after": "Rita R."},
        "manager": {"before": None, "after": "Arne Approver <approver>"},
    }


def test_a_management_loop_is_refused_with_an_error(admin, requester, approver, verified_client):
    requester.manager = approver
    requester.save()
    client = verified_client(admin)
    seq = last_seq()
    response = client.post(user_change_url(approver), user_form(approver, manager=requester.pk), follow=True)
    assert any("own manager" in text for text in messages_of(response))
    approver.refresh_from_db()
    assert approver.manager is None
    assert events_after(seq) == []


def test_the_auditor_sees_people_but_changes_nobody(auditor, requester, verified_client):
    client = verified_client(auditor)
    assert client.get(USERS).status_code == 200
    assert client.get(user_change_url(requester)).status_code == 200
    seq = last_seq()
    response = client.post(user_change_url(requester), user_form(requester, display_name="Hacked"))
    assert response.status_code == 403
    client.post(USERS, confirm("deactivate", requester, reason="No"))
    requester.refresh_from_db()
    assert requester.display_name == "Rita Requester" and requester.is_active
    assert not AuditEvent.objects.filter(seq__gt=seq).exists()


def test_deactivating_asks_why_then_ends_every_session_of_the_person(admin, requester, verified_client):
    their_browser = signed_in(requester)
    assert their_browser.get("/roles/").status_code == 200
    client = verified_client(admin)
    page = client.post(USERS, action("deactivate", requester))
    assert page.status_code == 200
    assert 'name="reason"' in page.content.decode() and "Rita Requester" in page.content.decode()
    assert User.objects.get(pk=requester.pk).is_active  # nothing happens before the confirmation

    seq = last_seq()
    response = client.post(USERS, confirm("deactivate", requester, reason="Left the company"), follow=True)
    assert "Deactivated 1 account(s)." in messages_of(response)
    requester.refresh_from_db()
    assert not requester.is_active
    events = events_after(seq, action="user.deactivated")
    assert len(events) == 1 and events[0].actor == admin
    assert events[0].details == {"reason": "Left the company"}
    # their next request is anonymous
    response = their_browser.get("/roles/")
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))


def test_deactivating_revokes_the_roles_held(admin, requester, verified_client):
    held = ActiveAssignmentFactory(user=requester, role=RoleFactory())
    verified_client(admin).post(USERS, confirm("deactivate", requester, reason="Left"))
    held.refresh_from_db()
    assert held.ended_at is not None and held.end_reason == "revoked"


def test_deactivating_without_a_reason_asks_again(admin, requester, verified_client):
    client = verified_client(admin)
    seq = last_seq()
    response = client.post(USERS, confirm("deactivate", requester, reason="  "))
    assert response.status_code == 200
    assert "This field is required." in response.content.decode()
    assert User.objects.get(pk=requester.pk).is_active
    assert events_after(seq) == []


def test_deactivating_the_last_pim_administrator_is_refused_with_an_error(admin, verified_client):
    client = verified_client(admin)
    seq = last_seq()
    response = client.post(USERS, confirm("deactivate", admin, reason="Oops"), follow=True)
    assert any("refused" in text and "anti-lockout" in text for text in messages_of(response))
    assert User.objects.get(pk=admin.pk).is_active
    assert not events_after(seq, action="user.deactivated")


def test_reactivating_lets_the_person_sign_in_again(admin, requester, verified_client):
    requester.is_active = False
    requester.save()
    client = verified_client(admin)
    seq = last_seq()
    response = client.post(USERS, confirm("reactivate", requester, reason="Came back"), follow=True)
    assert "Reactivated 1 account(s)." in messages_of(response)
    assert User.objects.get(pk=requester.pk).is_active
    assert [e.action for e in events_after(seq)] == ["user.reactivated"]
    assert signed_in(requester).get("/roles/").status_code == 200


# --- Groups --------------------------------------------------------------------------------


@pytest.fixture
def payroll():
    return RoleFactory(name="Payroll Administrator")


@pytest.fixture
def group(payroll):
    """A group holding a role right now: its members hold it too."""
    group = DirectoryGroupFactory(name="Payroll Team")
    ActiveAssignmentFactory(user=None, group=group, role=payroll)
    return group


def test_adding_a_member_in_the_admin_gives_them_the_groups_roles(
    admin, requester, group, payroll, verified_client
):
    assert not user_holds_role(user=requester, role=payroll)
    client = verified_client(admin)
    page = client.get(group_change_url(group)).content.decode()
    assert "Active: Payroll Administrator at <code>/</code>" in page  # what joining gives
    seq = last_seq()
    response = client.post(group_change_url(group), group_form(group, members=[requester.pk]))
    assert response.status_code == 302
    assert user_holds_role(user=requester, role=payroll)
    events = events_after(seq)
    assert [e.action for e in events] == ["group.member_added"]
    assert events[0].actor == admin and events[0].target_id == str(requester.pk)
    assert events[0].details["group"] == "Payroll Team"


def test_removing_a_member_in_the_admin_takes_the_groups_roles_away(
    admin, requester, approver, group, payroll, verified_client
):
    group.members.add(requester, approver)
    assert user_holds_role(user=requester, role=payroll)
    client = verified_client(admin)
    seq = last_seq()
    response = client.post(group_change_url(group), group_form(group, members=[approver.pk]))
    assert response.status_code == 302
    assert not user_holds_role(user=requester, role=payroll)
    assert user_holds_role(user=approver, role=payroll)
    events = events_after(seq)
    assert [e.action for e in events] == ["group.member_removed"]
    assert events[0].target_id == str(requester.pk)


def test_removing_the_last_member_of_the_last_permanent_pim_administrators_is_refused(
    admin, requester, verified_client
):
    group = DirectoryGroupFactory(name="PIM Admins")
    group.members.add(requester)
    EligibleAssignmentFactory(user=None, group=group, role=portal_role("pim.administrator"), ends_at=None)
    client = verified_client(admin)
    seq = last_seq()
    response = client.post(group_change_url(group), group_form(group, members=[]), follow=True)
    assert any("anti-lockout" in text for text in messages_of(response))
    assert list(group.members.all()) == [requester]
    assert events_after(seq) == []


def test_creating_a_group_with_members_in_the_admin(admin, requester, approver, verified_client):
    client = verified_client(admin)
    seq = last_seq()
    data = {"name": "On-call", "description": "Night shift", "members": [requester.pk, approver.pk]}
    response = client.post(reverse("admin:accounts_directorygroup_add"), data)
    assert response.status_code == 302
    group = DirectoryGroup.objects.get(name="On-call")
    assert set(group.members.all()) == {requester, approver}
    assert [e.action for e in events_after(seq)] == [
        "group.created",
        "group.member_added",
        "group.member_added",
    ]


def test_a_refused_member_change_changes_nothing_at_all(admin, requester, outsider, group, verified_client):
    outsider.is_active = False
    outsider.save()
    client = verified_client(admin)
    seq = last_seq()
    data = group_form(group, name="Payroll Crew", members=[requester.pk, outsider.pk])
    response = client.post(group_change_url(group), data, follow=True)
    assert any("deactivated" in text for text in messages_of(response))
    group.refresh_from_db()
    assert group.name == "Payroll Team" and not group.members.exists()
    assert events_after(seq) == []


def test_groups_cannot_be_deleted_in_the_admin(admin, group, verified_client):
    client = verified_client(admin)
    delete = reverse("admin:accounts_directorygroup_delete", args=[group.pk])
    assert client.post(delete, {"post": "yes"}).status_code == 403
    assert DirectoryGroup.objects.filter(pk=group.pk).exists()


def test_the_auditor_sees_groups_but_changes_no_membership(auditor, requester, group, verified_client):
    client = verified_client(auditor)
    assert client.get(GROUPS).status_code == 200
    assert client.get(group_change_url(group)).status_code == 200
    seq = last_seq()
    response = client.post(group_change_url(group), group_form(group, members=[requester.pk]))
    assert response.status_code == 403
    response = client.post(reverse("admin:accounts_directorygroup_add"), {"name": "Mine", "members": []})
    assert response.status_code == 403
    assert not group.members.exists() and not DirectoryGroup.objects.filter(name="Mine").exists()
    assert not AuditEvent.objects.filter(seq__gt=seq).exists()


def test_people_search_escapes_what_people_typed(admin, verified_client):
    UserFactory(username="mallory", display_name="<b>Mallory</b>")
    page = verified_client(admin).get(USERS, {"q": "mallory"}).content.decode()
    assert "<b>Mallory</b>" not in page and "&lt;b&gt;Mallory&lt;/b&gt;" in page
