"""Administration in the portal (/manage/roles/): the Roles list, a role's page, the settings
editor and the assignment forms. Only PIM Administrators with the role active get in; every
change needs a fresh step-up and goes through the roles services."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.tests.helpers import events_after, last_seq
from roles import notification_matrix
from roles.models import ActiveAssignment, EligibleAssignment, PendingChange, Role, RoleSettings
from roles.selectors import PIM_ADMINISTRATOR
from tests.factories import (
    DirectoryGroupFactory,
    EligibleAssignmentFactory,
    RoleFactory,
    UserFactory,
    portal_role,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]


@pytest.fixture
def role():
    return RoleFactory(name="Payroll Administrator", description="Runs payroll")


def url(name, role=None):
    return reverse(f"manage_roles:{name}", args=[role.pk] if role else [])


def page(response) -> str:
    return response.content.decode()


def settings_data(role_settings: RoleSettings, **overrides) -> dict:
    """The editor's form as posted unchanged, durations in hours, with overrides."""
    data = {}
    for field in (
        "require_mfa",
        "require_justification",
        "require_ticket",
        "require_approval",
        "eligible_allow_permanent",
        "active_allow_permanent",
        "active_require_mfa",
        "active_require_justification",
    ):
        if getattr(role_settings, field):
            data[field] = "on"
    for field in (
        "activation_max_duration",
        "approval_timeout",
        "eligible_max_duration",
        "active_max_duration",
    ):
        data[f"{field}_0"] = str(getattr(role_settings, field) / timedelta(hours=1))
        data[f"{field}_1"] = "hours"
    data["approvals_required"] = str(role_settings.approvals_required)
    for field in ("activation_authentication_strength", "approval_authentication_strength"):
        data[field] = getattr(role_settings, field)
    for name in notification_matrix.FIELDS:
        value = getattr(role_settings, name)
        if isinstance(value, bool):
            if value:
                data[name] = "on"
        else:
            data[name] = value
    data["approvers"] = [str(user.pk) for user in role_settings.approvers.all()]
    data["approver_groups"] = [str(group.pk) for group in role_settings.approver_groups.all()]
    data["approvers_add"] = data["approver_groups_add"] = ""
    for key, value in overrides.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    return data


def assignment_data(principal="requester", **overrides) -> dict:
    data = {
        "principal": principal,
        "scope": "/",
        "starts_at": "",
        "end": "duration",
        "duration": "30",
        "duration_unit": "days",
        "ends_at": "",
        "justification": "Month-end cover",
    }
    data.update(overrides)
    return data


# --- Who gets in ---------------------------------------------------------------------------


def every_url(role) -> list[str]:
    return [
        url("list"),
        url("principal_search") + "?q=req",
        url("role", role),
        url("settings", role),
        url("who_approves", role),
        url("eligible_new", role),
        url("active_new", role),
    ]


@pytest.mark.parametrize("persona", ["outsider", "requester", "auditor", "eligible_admin"])
def test_everyone_but_an_active_pim_administrator_is_refused_on_every_url(
    persona, request, verified_client, role
):
    if persona == "eligible_admin":
        user = UserFactory(username="notyet")
        EligibleAssignmentFactory(user=user, role=portal_role(PIM_ADMINISTRATOR))
    else:
        user = request.getfixturevalue(persona)
    client = verified_client(user)
    seq = last_seq()
    for address in every_url(role):
        assert client.get(address).status_code == 404, address
    assert (
        client.post(
            url("settings", role), settings_data(role.settings, require_ticket="on", confirm="yes")
        ).status_code
        == 404
    )
    assert client.post(url("eligible_new", role), assignment_data()).status_code == 404
    assert client.post(url("active_new", role), assignment_data()).status_code == 404
    role.settings.refresh_from_db()
    assert role.settings.require_ticket is False
    assert not EligibleAssignment.objects.filter(role=role).exists()
    assert not ActiveAssignment.objects.filter(role=role).exists()
    assert [
        e.action for e in events_after(seq) if e.action.startswith(("role_settings", "eligible", "active"))
    ] == []
    assert 'id="nav-manage-roles"' not in page(client.get(reverse("activations:my_roles")))


def test_a_signed_out_visitor_is_sent_to_sign_in(client, role):
    for address in every_url(role):
        response = client.get(address)
        assert response.status_code == 302 and response["Location"].startswith("/accounts/login/"), address


def test_the_navigation_links_the_roles_pages_for_a_pim_administrator(admin, verified_client):
    text = page(verified_client(admin).get(reverse("activations:my_roles")))
    assert f'href="{url("list")}" id="nav-manage-roles"' in text


# --- The Roles list ------------------------------------------------------------------------


def test_the_list_searches_and_filters(admin, verified_client, requester):
    payroll = RoleFactory(name="Payroll Zeta", privileged=True)
    RoleFactory(name="Payroll Eta", privileged=False)
    EligibleAssignmentFactory(user=requester, role=payroll)
    client = verified_client(admin)

    def names(**query):
        response = client.get(url("list"), query)
        assert response.status_code == 200
        return [role.name for role in response.context["roles"]]

    assert names(q="payroll z") == ["Payroll Zeta"]
    assert names(q="Payroll", privileged="yes") == ["Payroll Zeta"]
    assert names(q="Payroll", privileged="no") == ["Payroll Eta"]
    assert names(q="Payroll", eligible="yes") == ["Payroll Zeta"]
    assert names(q="Payroll", eligible="no") == ["Payroll Eta"]
    entra = names(source="entra")
    assert entra and all(Role.objects.get(name=name).kind == Role.Kind.ENTRA for name in entra)
    assert "Payroll Zeta" in names(q="Payroll", source="other")
    assert names(entra="yes") == entra and "Payroll Zeta" in names(q="Payroll", entra="no")  # old links
    text = page(client.get(url("list"), {"q": "Payroll"}))
    assert f'href="{url("role", payroll)}"' in text and 'id="django-admin-link"' in text


def test_the_source_filter_lists_only_governed_groups_roles(admin, verified_client):
    from roles.services import group_govern

    payroll = DirectoryGroupFactory(name="Payroll Admins", external_id="93000000-0000-4000-8000-000000000003")
    member, owner = group_govern(actor=None, group=payroll)
    RoleFactory(name="Member of the payroll desk")  # a local role whose name looks like one
    client = verified_client(admin)

    response = client.get(url("list"), {"source": "group"})

    assert response.status_code == 200
    assert [role.name for role in response.context["roles"]] == [member.name, owner.name]
    text = page(response)
    assert '<option value="group" selected>Governed groups (PIM for Groups)</option>' in text
    assert f'href="{url("role", member)}"' in text and "Member of the payroll desk" not in text
    others = [role.kind for role in client.get(url("list"), {"source": "other"}).context["roles"]]
    assert others and Role.Kind.GROUP not in others and Role.Kind.ENTRA not in others
    every = client.get(url("list"), {"source": "nonsense"}).context["page"].paginator.count
    assert every == Role.objects.count()  # an unknown source filters nothing


def test_the_list_is_paged_and_keeps_the_filters_in_its_links(admin, verified_client):
    for number in range(30):
        RoleFactory(name=f"Paged role {number:02}")
    response = verified_client(admin).get(url("list"), {"q": "Paged role"})
    assert len(response.context["roles"]) == 25
    assert "?q=Paged+role&amp;page=2" in page(response)
    second = verified_client(admin).get(url("list"), {"q": "Paged role", "page": 2})
    assert [role.name for role in second.context["roles"]] == [f"Paged role {n}" for n in range(25, 30)]


def test_the_list_takes_the_same_number_of_queries_whatever_the_data(admin, verified_client, requester):
    client = verified_client(admin)
    client.get(url("list"))  # warm up (session, content types)

    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert client.get(url("list"), {"q": "Counted"}).status_code == 200
        return len(captured)

    RoleFactory(name="Counted 0")
    few = queries()
    group = DirectoryGroupFactory()
    for number in range(1, 40):
        counted = RoleFactory(name=f"Counted {number}", privileged=number % 2 == 0)
        EligibleAssignmentFactory(user=requester, role=counted)
        EligibleAssignmentFactory(group=group, user=None, role=counted)
        counted.owners.add(admin)
    assert queries() == few


# --- A role's page -------------------------------------------------------------------------


def test_the_role_page_shows_settings_assignments_and_who_approves(admin, verified_client, role, requester):
    EligibleAssignmentFactory(user=requester, role=role, justification="Month-end close")
    RoleSettings.objects.filter(role=role).update(require_approval=True)
    text = page(verified_client(admin).get(url("role", role)))
    assert "Month-end close" in text and "Rita Requester" in text
    # Nobody named and no owners: the PIM Administrators approve, and the page says so.
    assert "nobody is named and the role has no owners, so the PIM Administrators" in text
    assert "Ada Admin" in text
    assert "8 hours" in text and "At most 365 days" in text
    assert f'href="{reverse("admin:roles_role_change", args=[role.pk])}"' in text


# --- The settings editor -------------------------------------------------------------------


def test_the_editor_shows_durations_in_hours_and_days_with_their_range(admin, verified_client, role):
    response = verified_client(admin).get(url("settings", role))
    text = page(response)
    assert response.status_code == 200
    assert 'name="activation_max_duration_0"' in text and 'value="8"' in text
    assert "Allowed: between 30 minutes and 24 hours." in text
    assert "Allowed: between 1 hour and 14 days." in text
    assert "Allowed: between 5 minutes and 3650 days." in text
    assert 'value="365"' in text  # eligible assignments: 365 days
    assert "Who approves this role" in text or "Approval is off" in text


def test_a_change_is_summarised_first_and_saved_only_once_confirmed(admin, verified_client, role, approver):
    client = verified_client(admin)
    seq = last_seq()
    data = settings_data(
        role.settings,
        activation_max_duration_0="4",
        require_ticket="on",
        require_approval="on",
        approvers_add="approver",
    )
    response = client.post(url("settings", role), data)

    assert response.status_code == 200
    summary = response.context["summary"]
    assert ("Activation maximum duration", "8 hours", "4 hours") in summary
    assert ("Require a ticket on activation", "No", "Yes") in summary
    assert ("Approvers", "none", "Arne Approver") in summary
    text = page(response)
    assert "Who approves this role: the named approvers: Arne Approver." in text
    role.settings.refresh_from_db()
    assert role.settings.require_ticket is False and events_after(seq) == []

    # The confirm page carries the same values back.
    confirm = client.post(url("settings", role), {**data, "confirm": "yes"})
    assert confirm.status_code == 302 and confirm["Location"] == url("role", role)
    role.settings.refresh_from_db()
    assert role.settings.activation_max_duration == timedelta(hours=4)
    assert role.settings.require_ticket is True
    assert list(role.settings.approvers.all()) == [approver]
    [event] = events_after(seq)
    assert event.action == "role_settings.changed" and event.actor == admin
    assert event.details["changes"]["activation_max_duration"] == {"before": 8 * 3600, "after": 4 * 3600}


def test_the_confirm_page_round_trips_every_value(admin, verified_client, role, approver):
    """Posting the confirm page's own hidden fields saves exactly what was summarised."""
    client = verified_client(admin)
    data = settings_data(
        role.settings, eligible_max_duration_0="30", eligible_max_duration_1="days", approvers_add="approver"
    )
    confirm_page = page(client.post(url("settings", role), data))
    import re

    hidden = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', confirm_page)
    posted: dict[str, list[str]] = {}
    for name, value in hidden:
        posted.setdefault(name, []).append(value.replace("&#x27;", "'").replace("&amp;", "&"))
    posted["confirm"] = ["yes"]
    response = client.post(url("settings", role), posted)
    assert response.status_code == 302
    role.settings.refresh_from_db()
    assert role.settings.eligible_max_duration == timedelta(days=30)
    assert role.settings.activation_max_duration == timedelta(hours=8)
    assert list(role.settings.approvers.all()) == [approver]


def test_the_editor_sets_the_authentication_strength_for_activation_and_approval(
    admin, verified_client, role
):
    client = verified_client(admin)
    data = settings_data(
        role.settings,
        activation_authentication_strength="phishing_resistant",
        approval_authentication_strength="phishing_resistant",
    )
    summary = client.post(url("settings", role), data).context["summary"]
    assert ("Authentication strength to activate", "Any MFA", "Phishing-resistant (passkey)") in summary

    response = client.post(url("settings", role), {**data, "confirm": "yes"})

    assert response.status_code == 302
    role.settings.refresh_from_db()
    assert role.settings.activation_authentication_strength == "phishing_resistant"
    assert role.settings.approval_authentication_strength == "phishing_resistant"
    refused = client.post(
        url("settings", role), settings_data(role.settings, approval_authentication_strength="weak")
    )
    assert "approval_authentication_strength" in refused.context["form"].errors


def test_the_editor_edits_the_notification_matrix(admin, verified_client, role, settings):
    settings.PIM_TWO_PERSON_RULE = False  # turning a default off loosens (a second admin's call)
    client = verified_client(admin)
    field = "notify_activation_admin_additional"
    bad = client.post(
        url("settings", role), settings_data(role.settings, **{field: "soc@example.org; not-an-address"})
    )
    assert "Not an email address: not-an-address." in bad.context["form"].errors[field]
    data = settings_data(role.settings, **{field: "soc@example.org;  audit@example.org"})
    data.pop("notify_eligible_assignee_default", None)  # unticked: the assignee is not told

    response = client.post(url("settings", role), {**data, "confirm": "yes"})

    assert response.status_code == 302, response.context["form"].errors
    role.settings.refresh_from_db()
    assert role.settings.notify_activation_admin_additional == "soc@example.org\naudit@example.org"
    assert role.settings.notify_eligible_assignee_default is False
    page_text = page(client.get(url("settings", role)))
    assert "Notifications: eligible members activate" in page_text


def test_saving_unchanged_settings_writes_nothing(admin, verified_client, role):
    client = verified_client(admin)
    seq = last_seq()
    response = client.post(
        url("settings", role), {**settings_data(role.settings), "confirm": "yes"}, follow=True
    )
    assert "Nothing changed" in page(response)
    assert events_after(seq) == []


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        (
            {"activation_max_duration_0": "25"},
            "activation_max_duration",
            "25 hours is out of range: enter a duration between 30 minutes and 24 hours.",
        ),
        ({"activation_max_duration_0": "0.25"}, "activation_max_duration", "15 minutes is out of range"),
        ({"activation_max_duration_0": "eight"}, "activation_max_duration", "“eight” is not a number"),
        (
            {"activation_max_duration_0": ""},
            "activation_max_duration",
            "Enter a number and choose hours or days.",
        ),
        (
            {"activation_max_duration_0": "-3"},
            "activation_max_duration",
            "Enter a duration between 30 minutes and 24 hours.",
        ),
        (
            {"approval_timeout_0": "15", "approval_timeout_1": "days"},
            "approval_timeout",
            "between 1 hour and 14 days",
        ),
        (
            {"eligible_max_duration_0": "4000", "eligible_max_duration_1": "days"},
            "eligible_max_duration",
            "between 5 minutes and 3650 days",
        ),
        ({"approvals_required": "0"}, "approvals_required", "Between 1 and 10 approvals can be required."),
        ({"approvers_add": "nobody-here"}, "approvers_add", "Nobody active is called nobody-here"),
        ({"require_approval": "on", "approvals_required": "5"}, "require_approval", "could approve"),
    ],
)
def test_invalid_settings_are_explained_next_to_the_field_and_nothing_is_saved(
    admin, verified_client, role, overrides, field, message
):
    client = verified_client(admin)
    seq = last_seq()
    before = RoleSettings.objects.get(pk=role.pk)
    response = client.post(
        url("settings", role), {**settings_data(role.settings, **overrides), "confirm": "yes"}
    )
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert message in " ".join(errors.get(field, [])), errors
    text = page(response)
    assert "roles_rolesettings" not in text and "Constraint" not in text
    assert events_after(seq) == []
    after = RoleSettings.objects.get(pk=role.pk)
    assert (after.activation_max_duration, after.approval_timeout, after.approvals_required) == (
        before.activation_max_duration,
        before.approval_timeout,
        before.approvals_required,
    )


def test_a_stale_step_up_is_asked_for_a_code_and_nothing_is_saved(admin, verified_client, role, clock):
    client = verified_client(admin)
    clock.shift(timedelta(minutes=6))
    seq = last_seq()
    response = client.post(
        url("settings", role), {**settings_data(role.settings, require_ticket="on"), "confirm": "yes"}
    )
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:verify"))
    response = client.post(url("eligible_new", role), assignment_data())
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:verify"))
    role.settings.refresh_from_db()
    assert role.settings.require_ticket is False
    assert not EligibleAssignment.objects.filter(role=role).exists()
    assert events_after(seq) == []


def test_loosening_a_privileged_roles_settings_becomes_a_pending_change(admin, second_admin, verified_client):
    role = RoleFactory(name="Vault Administrator", privileged=True)
    client = verified_client(admin)
    data = settings_data(role.settings, require_mfa=None, confirm="yes")
    response = client.post(url("settings", role), data)
    change = PendingChange.objects.get(role=role)
    assert response.status_code == 302 and response["Location"] == change.get_absolute_url()
    assert change.kind == PendingChange.Kind.ROLE_SETTINGS and change.proposer == admin
    role.settings.refresh_from_db()
    assert role.settings.require_mfa is True
    assert "waits for a second PIM Administrator" in page(client.get(url("role", role)))


def test_the_who_approves_line_follows_the_choice(admin, verified_client, role, approver, reviewer):
    client = verified_client(admin)
    role.owners.add(reviewer)
    answer = client.get(url("who_approves", role), {"require_approval": "on"}).json()
    assert answer["text"] == "Who approves this role: nobody is named, so the role's owners: Rene Reviewer."
    answer = client.get(
        url("who_approves", role), {"require_approval": "on", "approvers": [approver.pk]}
    ).json()
    assert answer["text"] == "Who approves this role: the named approvers: Arne Approver."
    answer = client.get(url("who_approves", role), {"approvers_add": "approver"}).json()
    assert answer["text"].startswith("Approval is off")


def test_the_search_suggests_people_and_groups(admin, verified_client, requester):
    DirectoryGroupFactory(name="Requesters Desk")
    client = verified_client(admin)
    results = client.get(url("principal_search"), {"q": "reque"}).json()["results"]
    assert {"value": "requester", "label": f"Rita Requester · {requester.email}", "kind": "person"} in results
    assert {"value": "group:Requesters Desk", "label": "Requesters Desk · group", "kind": "group"} in results
    only_people = client.get(url("principal_search"), {"q": "reque", "kind": "people"}).json()["results"]
    assert {result["kind"] for result in only_people} == {"person"}
    assert client.get(url("principal_search"), {"q": ""}).json() == {"results": []}


# --- Assignment forms ----------------------------------------------------------------------


def test_an_eligibility_is_assigned_from_now_for_a_duration(admin, verified_client, role, requester):
    client = verified_client(admin)
    seq = last_seq()
    response = client.post(url("eligible_new", role), assignment_data())
    assert response.status_code == 302 and response["Location"] == url("role", role)
    assignment = EligibleAssignment.objects.get(role=role, user=requester)
    now = timezone.now()
    assert assignment.starts_at == now and assignment.ends_at == now + timedelta(days=30)
    assert assignment.created_by == admin and assignment.justification == "Month-end cover"
    assert [e.action for e in events_after(seq)] == ["eligible_assignment.created"]


def test_a_group_is_assigned_until_a_date(admin, verified_client, role):
    group = DirectoryGroupFactory(name="Payroll Team")
    client = verified_client(admin)
    ends = (timezone.now() + timedelta(days=10)).replace(second=0, microsecond=0)
    data = assignment_data("group:Payroll Team", end="date", ends_at=ends.strftime("%Y-%m-%dT%H:%M"))
    assert client.post(url("eligible_new", role), data).status_code == 302
    assignment = EligibleAssignment.objects.get(role=role, group=group)
    assert assignment.ends_at == ends


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"duration": "400"}, "duration", "400 days is longer than this role allows: at most 365 days."),
        ({"end": "permanent"}, "end", "Select a valid choice."),
        ({"principal": "nobody"}, "principal", "Nobody active and no group is called “nobody”"),
        ({"principal": ""}, "principal", "Choose the user or group to assign."),
        ({"starts_at": "2020-01-01T10:00"}, "starts_at", "An assignment cannot start in the past."),
        ({"end": "date", "ends_at": ""}, "ends_at", "Enter the date and time the assignment ends (UTC)."),
        ({"duration": "abc"}, "duration", "Enter a number such as 30 or 1.5."),
    ],
)
def test_a_refused_eligibility_keeps_the_form_and_says_what_to_change(
    admin, verified_client, role, requester, overrides, field, message
):
    client = verified_client(admin)
    seq = last_seq()
    data = assignment_data(**overrides)
    response = client.post(url("eligible_new", role), data)
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert message in " ".join(errors.get(field, [])), errors
    text = page(response)
    assert "Month-end cover" in text  # what was typed stays
    assert "one_principal" not in text and "Constraint" not in text
    assert not EligibleAssignment.objects.filter(role=role).exists()
    assert events_after(seq) == []


def test_an_overlapping_eligibility_is_refused_in_words(admin, verified_client, role, requester):
    EligibleAssignmentFactory(user=requester, role=role)
    client = verified_client(admin)
    response = client.post(url("eligible_new", role), assignment_data())
    assert response.status_code == 200
    assert "already has an eligible assignment" in " ".join(response.context["form"].non_field_errors())
    assert 'value="requester"' in page(response)
    assert EligibleAssignment.objects.filter(role=role).count() == 1


def test_an_eligibility_for_oneself_waits_for_a_second_administrator(
    admin, second_admin, verified_client, role
):
    client = verified_client(admin)
    response = client.post(url("eligible_new", role), assignment_data("pimadmin"))
    change = PendingChange.objects.get(role=role)
    assert response["Location"] == change.get_absolute_url()
    assert change.kind == PendingChange.Kind.SELF_ELIGIBLE
    assert not EligibleAssignment.objects.filter(role=role).exists()


def test_a_direct_active_assignment_of_a_role_requiring_mfa_uses_the_fresh_step_up(
    admin, verified_client, role, requester
):
    RoleSettings.objects.filter(role=role).update(active_require_mfa=True)
    client = verified_client(admin)
    response = client.post(url("active_new", role), assignment_data(duration="12", duration_unit="hours"))
    assert response.status_code == 302, response.context and response.context["form"].errors
    assignment = ActiveAssignment.objects.get(role=role, user=requester)
    assert assignment.ends_at == timezone.now() + timedelta(hours=12)
    assert assignment.origin == ActiveAssignment.Origin.DIRECT


def test_an_active_assignment_needs_the_justification_the_role_requires(admin, verified_client, role):
    client = verified_client(admin)
    response = client.post(url("active_new", role), assignment_data(justification=""))
    assert response.status_code == 200
    assert "require a justification" in " ".join(response.context["form"].errors["justification"])
    assert not ActiveAssignment.objects.filter(role=role).exists()
