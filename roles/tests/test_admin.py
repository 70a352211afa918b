"""The Django admin: who gets in, and every change going through the services (audited,
policy-checked, refusals shown as errors)."""

from datetime import timedelta

import pytest
from django.contrib import admin as django_admin
from django.urls import reverse
from django.utils import timezone
from django.utils.duration import duration_string

from accounts.models import DirectoryGroup, User
from accounts.tests.helpers import events_after, last_seq, sign_in_password
from audit.models import AuditEvent
from roles import notification_matrix
from roles.models import ActiveAssignment, EligibleAssignment, Role, RoleSettings
from tests.factories import (
    DirectoryGroupFactory,
    EligibleAssignmentFactory,
    RoleFactory,
    UserFactory,
    totp_code,
    totp_device,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def role():
    return RoleFactory(name="Payroll Administrator")


def admin_url(model, view, *args):
    meta = model._meta
    return reverse(f"admin:{meta.app_label}_{meta.model_name}_{view}", args=args)


def split(moment) -> dict:
    """A datetime as the admin's split date/time widget posts it."""
    return {"0": moment.strftime("%Y-%m-%d"), "1": moment.strftime("%H:%M:%S")}


def assignment_form(role, user, *, starts_at=None, ends_at=None, justification="Payroll cover"):
    starts_at = starts_at or timezone.now()
    data = {"role": role.pk, "user": user.pk, "group": "", "scope": "/", "justification": justification}
    data.update({f"starts_at_{k}": v for k, v in split(starts_at).items()})
    ends = split(ends_at) if ends_at else {"0": "", "1": ""}
    data.update({f"ends_at_{k}": v for k, v in ends.items()})
    return data


def settings_form(role_settings: RoleSettings, **overrides) -> dict:
    """The role settings change form as it would be posted unchanged, with overrides."""
    values = {
        field: getattr(role_settings, field)
        for field in (
            "activation_max_duration",
            "require_mfa",
            "activation_authentication_strength",
            "approval_authentication_strength",
            "require_justification",
            "require_ticket",
            "require_approval",
            "approvals_required",
            "approval_timeout",
            "eligible_allow_permanent",
            "eligible_max_duration",
            "active_allow_permanent",
            "active_max_duration",
            "active_require_mfa",
            "active_require_justification",
            *notification_matrix.FIELDS,
        )
    }
    values.update(overrides)
    data = {}
    for field, value in values.items():
        if isinstance(value, bool):
            if value:
                data[field] = "on"
        elif isinstance(value, timedelta):
            data[field] = duration_string(value)
        else:
            data[field] = value
    data["approvers"] = [user.pk for user in role_settings.approvers.all()]
    data["approver_groups"] = [group.pk for group in role_settings.approver_groups.all()]
    return data


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]] if response.context else []


# --- Who gets in ---------------------------------------------------------------------------


def registered_admin_urls() -> list[str]:
    urls = []
    for model in django_admin.site._registry:
        urls += [admin_url(model, "changelist"), admin_url(model, "add")]
        obj = model.objects.first()
        if obj is not None:
            urls += [admin_url(model, view, obj.pk) for view in ("change", "delete", "history")]
    return urls


def test_outsider_is_sent_away_from_the_admin_to_the_portal(outsider, verified_client):
    client = verified_client(outsider)
    response = client.get("/admin/", follow=True)
    final_url = response.redirect_chain[-1][0]
    assert final_url == reverse("activations:my_roles")
    assert response.status_code == 200
    assert "activate your role first" in response.content.decode()


def test_outsider_gets_no_model_admin_page(outsider, verified_client, role, requester):
    EligibleAssignmentFactory(user=requester, role=role)
    client = verified_client(outsider)
    urls = registered_admin_urls()
    assert admin_url(EligibleAssignment, "changelist") in urls
    for url in urls:
        response = client.get(url)
        assert response.status_code in (302, 403), url
        assert response.status_code == 403 or not response["Location"].startswith(url), url
        response = client.post(url, {})
        assert response.status_code in (302, 403), url
    assert EligibleAssignment.objects.count() == 1


def test_a_password_only_session_is_sent_to_verify_not_into_the_admin(admin, client):
    totp_device(admin)
    sign_in_password(client, admin)
    response = client.get("/admin/", follow=True)
    assert response.redirect_chain[-1][0].startswith(reverse("accounts:verify"))


def test_pim_administrator_sees_the_admin_index(admin, verified_client):
    response = verified_client(admin).get("/admin/")
    assert response.status_code == 200
    assert "Eligible assignments" in response.content.decode()


def test_break_glass_sign_in_is_flagged_and_reaches_the_admin(verified_client):
    breakglass = UserFactory(username="breakglass", is_superuser=True, is_staff=True)
    seq = last_seq()
    client = verified_client(breakglass)
    assert [e.action for e in events_after(seq, action="auth.break_glass_sign_in")] == [
        "auth.break_glass_sign_in"
    ]
    assert not events_after(seq, action="auth.sign_in")
    assert client.get("/admin/").status_code == 200


# --- Eligible assignments ------------------------------------------------------------------


def test_admin_adds_an_eligibility_through_the_service(admin, verified_client, role, requester):
    client = verified_client(admin)
    seq = last_seq()
    ends_at = timezone.now() + timedelta(days=30)
    response = client.post(
        admin_url(EligibleAssignment, "add"), assignment_form(role, requester, ends_at=ends_at)
    )
    assert response.status_code == 302, messages_of(response) or response.content.decode()[:2000]
    assignment = EligibleAssignment.objects.get(user=requester, role=role)
    assert assignment.created_by == admin
    assert assignment.justification == "Payroll cover"
    events = events_after(seq)
    assert [e.action for e in events] == ["eligible_assignment.created"]
    assert events[0].actor == admin
    assert events[0].target_id == str(assignment.pk)


@pytest.mark.parametrize(
    ("ends_in", "message"),
    [(timedelta(days=400), "at most 365 days"), (None, "Permanent eligible assignments")],
)
def test_an_eligibility_against_the_policy_is_refused_and_nothing_is_written(
    admin, verified_client, role, requester, ends_in, message
):
    client = verified_client(admin)
    seq = last_seq()
    ends_at = timezone.now() + ends_in if ends_in else None
    response = client.post(
        admin_url(EligibleAssignment, "add"), assignment_form(role, requester, ends_at=ends_at), follow=True
    )
    assert any(message in text and text.startswith("Refused") for text in messages_of(response))
    assert not EligibleAssignment.objects.filter(user=requester).exists()
    assert events_after(seq) == []


def test_deleting_an_eligibility_in_the_admin_removes_it_and_keeps_the_row(
    admin, verified_client, role, requester
):
    assignment = EligibleAssignmentFactory(user=requester, role=role)
    client = verified_client(admin)
    url = admin_url(EligibleAssignment, "delete", assignment.pk)
    assert client.get(url).status_code == 200
    seq = last_seq()
    response = client.post(url, {"post": "yes"})
    assert response.status_code == 302
    assignment.refresh_from_db()
    assert assignment.ended_at is not None
    assert assignment.ended_by == admin
    assert assignment.end_reason == EligibleAssignment.EndReason.REMOVED
    events = events_after(seq)
    assert [e.action for e in events] == ["eligible_assignment.removed"]
    assert events[0].actor == admin


def test_changing_the_end_of_an_eligibility_in_the_admin_is_an_audited_update(
    admin, verified_client, role, requester
):
    assignment = EligibleAssignmentFactory(user=requester, role=role)
    client = verified_client(admin)
    new_end = (timezone.now() + timedelta(days=10)).replace(microsecond=0)
    data = {f"ends_at_{k}": v for k, v in split(new_end).items()}
    data["reason"] = "Shorter cover"
    seq = last_seq()
    response = client.post(admin_url(EligibleAssignment, "change", assignment.pk), data)
    assert response.status_code == 302
    assignment.refresh_from_db()
    assert assignment.ends_at == new_end
    events = events_after(seq)
    assert [e.action for e in events] == ["eligible_assignment.updated"]
    assert events[0].details["justification"] == "Shorter cover"


def test_an_eligibility_without_a_start_starts_now(admin, verified_client, role, requester):
    data = assignment_form(role, requester, ends_at=timezone.now() + timedelta(days=30))
    data["starts_at_0"] = data["starts_at_1"] = ""
    response = verified_client(admin).post(admin_url(EligibleAssignment, "add"), data)
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    assignment = EligibleAssignment.objects.get(user=requester, role=role)
    assert abs(assignment.starts_at - timezone.now()) < timedelta(minutes=1)


def test_an_assignment_with_neither_user_nor_group_says_so_in_words(admin, verified_client, role, requester):
    data = assignment_form(role, requester, ends_at=timezone.now() + timedelta(days=30))
    data["user"] = ""
    response = verified_client(admin).post(admin_url(EligibleAssignment, "add"), data)
    assert response.status_code == 200
    page = response.content.decode()
    assert "Choose either a user or a group." in page
    assert "one_principal" not in page and "Constraint" not in page
    assert not EligibleAssignment.objects.exists()


def test_a_direct_active_assignment_of_a_role_requiring_mfa_is_made_with_the_sessions_step_up(
    admin, verified_client, role, requester
):
    RoleSettings.objects.filter(role=role).update(active_require_mfa=True)
    client = verified_client(admin)
    seq = last_seq()
    response = client.post(
        admin_url(ActiveAssignment, "add"),
        assignment_form(role, requester, ends_at=timezone.now() + timedelta(days=30)),
        follow=True,
    )
    assert not [text for text in messages_of(response) if text.startswith("Refused")]
    assignment = ActiveAssignment.objects.get(user=requester, role=role)
    assert assignment.origin == ActiveAssignment.Origin.DIRECT
    assert [e.action for e in events_after(seq)] == ["active_assignment.created"]


# --- Role settings -------------------------------------------------------------------------


def test_saving_role_settings_unchanged_in_the_admin_writes_no_event(admin, verified_client, role, approver):
    role.settings.approvers.add(approver)
    client = verified_client(admin)
    seq = last_seq()
    before = RoleSettings.objects.get(pk=role.pk).updated_at
    response = client.post(admin_url(RoleSettings, "change", role.pk), settings_form(role.settings))
    assert response.status_code == 302
    assert events_after(seq) == []
    assert RoleSettings.objects.get(pk=role.pk).updated_at == before


def test_changing_role_settings_in_the_admin_writes_the_diff(admin, verified_client, role):
    client = verified_client(admin)
    seq = last_seq()
    data = settings_form(role.settings, require_ticket=True, activation_max_duration=timedelta(hours=4))
    response = client.post(admin_url(RoleSettings, "change", role.pk), data)
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    role.settings.refresh_from_db()
    assert role.settings.require_ticket is True
    events = events_after(seq)
    assert [e.action for e in events] == ["role_settings.changed"]
    assert events[0].actor == admin
    assert events[0].details["changes"] == {
        "require_ticket": {"before": False, "after": True},
        "activation_max_duration": {"before": 8 * 3600, "after": 4 * 3600},
    }


def test_the_notification_matrix_is_edited_in_the_admin(admin, verified_client, role):
    client = verified_client(admin)
    seq = last_seq()
    data = settings_form(
        role.settings,
        notify_activation_admin_additional="SOC@example.test; ciso@example.test",
        notify_eligible_approver_additional="soc@example.test",
    )
    response = client.post(admin_url(RoleSettings, "change", role.pk), data)
    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    role.settings.refresh_from_db()
    assert role.settings.notify_activation_admin_additional == "soc@example.test\nciso@example.test"
    assert role.settings.notify_eligible_approver_additional == "soc@example.test"
    [event] = events_after(seq)
    assert set(event.details["changes"]) == {
        "notify_activation_admin_additional",
        "notify_eligible_approver_additional",
    }


def test_a_bad_notification_address_is_an_error_on_the_form(admin, verified_client, role):
    client = verified_client(admin)
    seq = last_seq()
    data = settings_form(role.settings, notify_active_admin_additional="soc@example.test\nnot an address")
    response = client.post(admin_url(RoleSettings, "change", role.pk), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "not an address" in " ".join(errors["notify_active_admin_additional"])
    assert events_after(seq) == []


def test_requiring_more_approvals_than_people_who_could_approve_is_an_error_on_the_form(
    admin, verified_client, role
):
    client = verified_client(admin)
    seq = last_seq()
    data = settings_form(role.settings, require_approval=True, approvals_required=2)
    response = client.post(admin_url(RoleSettings, "change", role.pk), data)
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "could approve" in " ".join(errors["require_approval"])
    role.settings.refresh_from_db()
    assert role.settings.require_approval is False
    assert events_after(seq) == []


# --- Roles and owners ----------------------------------------------------------------------


def role_form(role, **overrides):
    data = {
        "name": role.name,
        "description": role.description,
        "tier": role.tier,
        "owners": [user.pk for user in role.owners.all()],
    }
    if role.privileged:
        data["privileged"] = "on"
    data.update(overrides)
    return data


def test_adding_an_owner_in_the_admin_delegates_the_role(admin, verified_client, role, requester):
    client = verified_client(admin)
    seq = last_seq()
    response = client.post(admin_url(Role, "change", role.pk), role_form(role, owners=[requester.pk]))
    assert response.status_code == 302
    assert list(role.owners.all()) == [requester]
    events = events_after(seq)
    assert [e.action for e in events] == ["role.owner_added"]
    assert events[0].target_id == str(requester.pk)
    assert requester.has_perm("roles.manage_eligible_assignments", role)
    assert not requester.has_perm("roles.manage_eligible_assignments")

    response = client.post(admin_url(Role, "change", role.pk), role_form(role, owners=[]))
    assert response.status_code == 302
    assert [e.action for e in events_after(seq)][-1] == "role.owner_removed"
    assert not User.objects.get(pk=requester.pk).has_perm("roles.manage_eligible_assignments", role)


def test_adding_a_role_in_the_admin_creates_it_with_default_settings(admin, verified_client):
    client = verified_client(admin)
    seq = last_seq()
    data = {"name": "Payroll Reader", "description": "Reads payroll", "kind": "app", "tier": "standard"}
    response = client.post(admin_url(Role, "add"), data)
    assert response.status_code == 302
    role = Role.objects.get(name="Payroll Reader")
    assert RoleSettings.objects.filter(role=role).exists()
    assert [e.action for e in events_after(seq)] == ["role.created"]


# --- The auditor reads only ----------------------------------------------------------------


def test_auditor_can_read_the_admin(auditor, verified_client, role, requester):
    assignment = EligibleAssignmentFactory(user=requester, role=role)
    client = verified_client(auditor)
    for url in (
        "/admin/",
        admin_url(EligibleAssignment, "changelist"),
        admin_url(EligibleAssignment, "change", assignment.pk),
        admin_url(RoleSettings, "change", role.pk),
        admin_url(Role, "change", role.pk),
    ):
        assert client.get(url).status_code == 200, url


def test_auditor_changes_nothing_in_the_admin(auditor, verified_client, role, requester):
    assignment = EligibleAssignmentFactory(user=requester, role=role)
    ends_before = assignment.ends_at
    client = verified_client(auditor)
    seq = last_seq()
    later = {f"ends_at_{k}": v for k, v in split(timezone.now() + timedelta(days=100)).items()}
    posts = [
        (admin_url(EligibleAssignment, "add"), assignment_form(role, requester)),
        (admin_url(EligibleAssignment, "change", assignment.pk), later),
        (admin_url(EligibleAssignment, "delete", assignment.pk), {"post": "yes"}),
        (admin_url(RoleSettings, "change", role.pk), settings_form(role.settings, require_ticket=True)),
        (admin_url(Role, "change", role.pk), role_form(role, name="Renamed", owners=[auditor.pk])),
        (admin_url(Role, "add"), {"name": "Sneaky", "kind": "app", "tier": "high"}),
    ]
    for url, data in posts:
        assert client.post(url, data).status_code == 403, url
    assignment.refresh_from_db()
    role.refresh_from_db()
    role.settings.refresh_from_db()
    assert assignment.ends_at == ends_before and assignment.ended_at is None
    assert EligibleAssignment.objects.count() == 1
    assert role.name == "Payroll Administrator" and not role.owners.exists()
    assert role.settings.require_ticket is False
    assert not Role.objects.filter(name="Sneaky").exists()
    assert not AuditEvent.objects.filter(seq__gt=seq).exists()


# --- Fresh step-up for every change ---------------------------------------------------------


def test_a_stale_session_cannot_change_role_settings_in_the_admin(admin, verified_client, role, time_machine):
    """The admin's own finding: turning off MFA on a role from a session whose last code check
    was 20 minutes ago. Sent to confirm a code first; nothing changes, no event is written."""
    role.settings.require_mfa = True
    role.settings.save()
    client = verified_client(admin)
    time_machine.move_to(timezone.now() + timedelta(minutes=20), tick=False)  # past the step-up, not idle
    seq = last_seq()
    url = admin_url(RoleSettings, "change", role.pk)

    response = client.post(url, settings_form(role.settings, require_mfa=False))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:verify"))
    assert "next=" in response["Location"] and "admin" in response["Location"]
    role.settings.refresh_from_db()
    assert role.settings.require_mfa is True
    assert not events_after(seq, action="role_settings.changed")


def test_after_a_fresh_code_the_same_change_goes_through(
    admin, verified_client, role, time_machine, settings
):
    # The step-up alone (turning MFA off is a loosening: with the two-person rule on it would
    # wait for a second PIM Administrator, as roles/tests/test_two_person.py shows).
    settings.PIM_TWO_PERSON_RULE = False
    role.settings.require_mfa = True
    role.settings.save()
    client = verified_client(admin)
    time_machine.move_to(timezone.now() + timedelta(minutes=20), tick=False)  # past the step-up, not idle
    url = admin_url(RoleSettings, "change", role.pk)
    assert client.post(url, settings_form(role.settings, require_mfa=False)).status_code == 302

    time_machine.shift(timedelta(seconds=31))  # the next TOTP step: a code not used before
    response = client.post(
        f"{reverse('accounts:verify')}?next={url}", {"otp_token": totp_code(client.device)}
    )
    assert response.status_code == 302 and response["Location"] == url
    response = client.post(url, settings_form(role.settings, require_mfa=False))

    assert response.status_code == 302 and response["Location"] != url
    role.settings.refresh_from_db()
    assert role.settings.require_mfa is False


def test_a_stale_session_is_asked_for_a_code_before_the_add_page(admin, verified_client, time_machine):
    client = verified_client(admin)
    time_machine.move_to(timezone.now() + timedelta(minutes=20), tick=False)  # past the step-up, not idle
    response = client.get(admin_url(EligibleAssignment, "add"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:verify"))
    # Reading needs no new code: the list and change pages still show.
    assert client.get(admin_url(EligibleAssignment, "changelist")).status_code == 200


def test_a_stale_session_cannot_add_an_eligibility_for_anyone(
    admin, verified_client, role, requester, time_machine
):
    client = verified_client(admin)
    time_machine.move_to(timezone.now() + timedelta(minutes=20), tick=False)  # past the step-up, not idle
    response = client.post(admin_url(EligibleAssignment, "add"), assignment_form(role, requester))
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:verify"))
    assert not EligibleAssignment.objects.filter(user=requester).exists()


def test_signing_out_of_the_admin_needs_no_code(admin, verified_client, time_machine):
    client = verified_client(admin)
    time_machine.move_to(timezone.now() + timedelta(minutes=20), tick=False)  # past the step-up, not idle
    response = client.post(reverse("admin:logout"))
    assert not response.get("Location", "").startswith(reverse("accounts:verify"))
    assert "_auth_user_id" not in client.session


# --- The group page lists what its members inherit (roles extends accounts' admin) -----------


def test_the_group_page_lists_the_roles_its_members_inherit_and_leaves_out_ended_ones(admin, verified_client):
    group = DirectoryGroupFactory()
    EligibleAssignmentFactory(user=None, group=group, role=RoleFactory(name="Kept Role"), scope="/")
    EligibleAssignmentFactory(
        user=None,
        group=group,
        role=RoleFactory(name="Gone Role"),
        starts_at=timezone.now() - timedelta(days=3),
        ends_at=timezone.now() - timedelta(days=1),
    )

    page = verified_client(admin).get(admin_url(DirectoryGroup, "change", group.pk)).content.decode()

    assert "Roles its members inherit" in page
    assert "Eligible: Kept Role at <code>/</code>" in page
    assert "Gone Role" not in page
