"""The two-person rule where people meet it: the Django admin (editors say the rule applies, a
held-back save says so and changes nothing), the pending-changes list and approval page (sign-in,
fresh step-up, the diff, Approve / Reject), and who gets 404."""

from datetime import timedelta

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.tests.helpers import events_after, last_seq
from roles import services
from roles.models import ActiveAssignment, EligibleAssignment, PendingChange, RoleSettings
from tests.factories import PASSWORD, RoleFactory, totp_code, totp_device

from .test_admin import admin_url, assignment_form, messages_of, settings_form

pytestmark = pytest.mark.django_db

PENDING_MESSAGE = "Saved as a pending change: a second PIM Administrator must approve it."


@pytest.fixture
def role():
    return RoleFactory(name="Payroll Administrator", privileged=True)


def signed_in(user) -> Client:
    """A separate browser: password, then a fresh TOTP code."""
    client = Client()
    device = totp_device(user)
    assert (
        client.post("/accounts/login/", {"username": user.username, "password": PASSWORD}).status_code == 302
    )
    assert client.post("/accounts/verify/", {"otp_token": totp_code(device)}).status_code == 302
    client.device = device
    return client


def proposed(admin, role, **changes) -> PendingChange:
    change = services.role_settings_update(actor=admin, role=role, changes=changes or {"require_mfa": False})
    assert isinstance(change, PendingChange)
    return change


def detail(change):
    return reverse("roles:pending_change_detail", args=[change.pk])


def decide(change):
    return reverse("roles:pending_change_decide", args=[change.pk])


# --- The admin -----------------------------------------------------------------------------


def test_loosening_in_the_admin_is_saved_as_a_pending_change_and_changes_nothing(admin, second_admin, role):
    client = signed_in(admin)
    url = admin_url(RoleSettings, "change", role.pk)
    seq = last_seq()

    response = client.post(url, settings_form(role.settings, require_mfa=False), follow=True)

    assert response.redirect_chain[0] == (url, 302)
    assert any(message.startswith(PENDING_MESSAGE) for message in messages_of(response))
    role.settings.refresh_from_db()
    assert role.settings.require_mfa is True
    change = PendingChange.objects.get()
    assert (change.kind, change.proposer, change.payload) == (
        "role_settings",
        admin,
        {"changes": {"require_mfa": False}},
    )
    assert [e.action for e in events_after(seq)] == ["pending_change.proposed"]
    page = response.content.decode()
    assert "Two-person rule." in page and detail(change) in page  # the editor lists what waits


def test_tightening_in_the_admin_applies_at_once(admin, second_admin, role):
    client = signed_in(admin)
    response = client.post(
        admin_url(RoleSettings, "change", role.pk),
        settings_form(role.settings, require_ticket=True),
        follow=True,
    )
    assert not any(PENDING_MESSAGE in message for message in messages_of(response))
    role.settings.refresh_from_db()
    assert role.settings.require_ticket is True
    assert not PendingChange.objects.exists()


def test_the_editors_say_when_the_rule_applies(admin, role):
    client = signed_in(admin)
    settings_page = client.get(admin_url(RoleSettings, "change", role.pk)).content.decode()
    assert "Two-person rule." in settings_page and "second PIM Administrator" in settings_page
    for model in (EligibleAssignment, ActiveAssignment):
        add_page = client.get(admin_url(model, "add")).content.decode()
        assert "An assignment for yourself" in add_page
    plain = RoleFactory(privileged=False)
    assert "not marked privileged" in client.get(admin_url(RoleSettings, "change", plain.pk)).content.decode()


def test_with_the_rule_off_the_editors_say_nothing_and_loosening_applies(admin, role, settings):
    settings.PIM_TWO_PERSON_RULE = False
    client = signed_in(admin)
    url = admin_url(RoleSettings, "change", role.pk)
    assert "Two-person rule." not in client.get(url).content.decode()
    client.post(url, settings_form(role.settings, require_mfa=False))
    role.settings.refresh_from_db()
    assert role.settings.require_mfa is False


@pytest.mark.parametrize("model", [EligibleAssignment, ActiveAssignment])
def test_an_assignment_for_oneself_in_the_admin_waits_and_for_someone_else_applies(
    admin, second_admin, role, requester, model
):
    client = signed_in(admin)
    ends_at = timezone.now() + timedelta(days=30)

    response = client.post(
        admin_url(model, "add"), assignment_form(role, admin, ends_at=ends_at), follow=True
    )

    assert response.redirect_chain[0] == (admin_url(model, "changelist"), 302)
    assert any(message.startswith(PENDING_MESSAGE) for message in messages_of(response))
    assert not model.objects.filter(user=admin, role=role).exists()
    change = PendingChange.objects.get()
    assert change.kind == ("self_eligible" if model is EligibleAssignment else "self_active")

    response = client.post(admin_url(model, "add"), assignment_form(role, requester, ends_at=ends_at))
    assert response.status_code == 302
    assert model.objects.filter(user=requester, role=role).exists()
    assert PendingChange.objects.count() == 1


def test_un_marking_a_role_privileged_in_the_admin_waits(admin, second_admin, role):
    from roles.models import Role

    from .test_admin import role_form

    client = signed_in(admin)
    data = role_form(role)
    data.pop("privileged")
    response = client.post(admin_url(Role, "change", role.pk), data, follow=True)
    assert any(message.startswith(PENDING_MESSAGE) for message in messages_of(response))
    role.refresh_from_db()
    assert role.privileged is True
    assert PendingChange.objects.get().kind == "role"


def test_the_admin_index_links_the_pending_changes_read_only(admin, second_admin, role):
    change = proposed(admin, role)
    client = signed_in(second_admin)
    assert "Pending changes" in client.get("/admin/").content.decode()
    changelist = client.get(admin_url(PendingChange, "changelist")).content.decode()
    assert detail(change) in changelist
    assert client.get(admin_url(PendingChange, "change", change.pk)).status_code == 200
    assert (
        client.post(admin_url(PendingChange, "change", change.pk), {"status": "approved"}).status_code == 403
    )
    assert client.get(admin_url(PendingChange, "add")).status_code == 403
    change.refresh_from_db()
    assert change.status == "pending"


# --- The approval page ---------------------------------------------------------------------


def test_the_approval_page_shows_the_change_field_by_field(admin, second_admin, role):
    change = proposed(admin, role, require_mfa=False, activation_max_duration=timedelta(hours=12))
    response = signed_in(second_admin).get(detail(change))
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-field="require_mfa"' in page and 'data-field="activation_max_duration"' in page
    assert "8 hours" in page and "12 hours" in page
    assert admin.label.replace("<", "&lt;").replace(">", "&gt;") in page
    assert 'id="decision-form"' in page
    change.refresh_from_db()
    assert change.status == "pending"  # opening it changed nothing


def test_a_second_administrator_approves_on_the_page(admin, second_admin, role):
    change = proposed(admin, role)
    client = signed_in(second_admin)
    seq = last_seq()

    response = client.post(decide(change), {"decision": "approve", "reason": "Agreed"}, follow=True)

    assert response.redirect_chain[-1][0] == detail(change)
    assert any(message.startswith("Approved and applied") for message in messages_of(response))
    change.refresh_from_db()
    assert (change.status, change.decided_by) == ("approved", second_admin)
    role.settings.refresh_from_db()
    assert role.settings.require_mfa is False
    changed, approved = events_after(seq)
    assert changed.details["two_person"]["proposed_by"] == admin.label
    assert approved.details["approved_by"] == second_admin.label


def test_a_stale_session_confirms_a_code_before_the_page_and_before_deciding(
    admin, second_admin, role, time_machine
):
    change = proposed(admin, role)
    client = signed_in(second_admin)
    time_machine.move_to(timezone.now() + timedelta(minutes=10), tick=False)

    for response in (client.get(detail(change)), client.post(decide(change), {"decision": "approve"})):
        assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:verify"))
    change.refresh_from_db()
    assert change.status == "pending"

    time_machine.shift(timedelta(seconds=31))
    response = client.post(
        f"{reverse('accounts:verify')}?next={detail(change)}", {"otp_token": totp_code(client.device)}
    )
    assert response["Location"] == detail(change)
    client.post(decide(change), {"decision": "approve"})
    change.refresh_from_db()
    assert change.status == "approved"


def test_the_proposer_cannot_approve_on_the_page(admin, second_admin, role):
    change = proposed(admin, role)
    client = signed_in(admin)
    page = client.get(detail(change)).content.decode()
    assert 'id="decision-form"' not in page and "You proposed this change" in page
    seq = last_seq()

    response = client.post(decide(change), {"decision": "approve", "reason": "Trust me"}, follow=True)

    assert "You proposed this change: a second PIM Administrator must approve it." in messages_of(response)
    change.refresh_from_db()
    assert change.status == "pending"
    role.settings.refresh_from_db()
    assert role.settings.require_mfa is True
    [refused] = events_after(seq)
    assert (refused.action, refused.actor_id) == ("pending_change.self_approval_refused", admin.pk)


def test_rejecting_on_the_page_needs_a_reason(admin, second_admin, role):
    change = proposed(admin, role)
    client = signed_in(second_admin)
    response = client.post(decide(change), {"decision": "reject", "reason": ""})
    assert response.status_code == 200 and "A reason is required" in response.content.decode()
    client.post(decide(change), {"decision": "reject", "reason": "Not now"})
    change.refresh_from_db()
    assert (change.status, change.reason) == ("rejected", "Not now")


def test_the_proposer_cancels_on_the_page(admin, second_admin, role):
    change = proposed(admin, role)
    client = signed_in(admin)
    client.post(reverse("roles:pending_change_cancel", args=[change.pk]))
    change.refresh_from_db()
    assert change.status == "canceled"


def test_the_list_shows_what_waits_and_the_nav_links_it(admin, second_admin, role):
    change = proposed(admin, role)
    client = signed_in(second_admin)
    page = client.get(reverse("roles:pending_changes")).content.decode()
    assert detail(change) in page
    home = client.get(reverse("activations:my_roles")).content.decode()
    assert 'id="nav-pending-changes"' in home and 'aria-label="1 waiting"' in home


@pytest.mark.parametrize("persona", ["outsider", "auditor", "requester"])
def test_people_who_are_not_active_pim_administrators_get_404(admin, second_admin, role, persona, request):
    change = proposed(admin, role)
    client = signed_in(request.getfixturevalue(persona))
    for url in (reverse("roles:pending_changes"), detail(change)):
        assert client.get(url).status_code == 404, url
    for url in (decide(change), reverse("roles:pending_change_cancel", args=[change.pk])):
        assert client.post(url, {"decision": "approve"}).status_code == 404, url
    assert 'id="nav-pending-changes"' not in client.get(reverse("activations:my_roles")).content.decode()
    change.refresh_from_db()
    assert change.status == "pending"


def test_signed_out_people_are_sent_to_sign_in(admin, second_admin, role):
    change = proposed(admin, role)
    response = Client().get(detail(change))
    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))


def test_a_later_end_for_ones_own_eligibility_in_the_admin_waits(admin, second_admin, role):
    from tests.factories import EligibleAssignmentFactory

    from .test_admin import split

    assignment = EligibleAssignmentFactory(user=admin, role=role, ends_at=timezone.now() + timedelta(days=10))
    client = signed_in(admin)
    later = (timezone.now() + timedelta(days=90)).replace(microsecond=0)
    data = {f"ends_at_{k}": v for k, v in split(later).items()}
    data["reason"] = "Longer cover"
    url = admin_url(EligibleAssignment, "change", assignment.pk)
    assert "Two-person rule." in client.get(url).content.decode()

    response = client.post(url, data, follow=True)

    assert any(message.startswith(PENDING_MESSAGE) for message in messages_of(response))
    assignment.refresh_from_db()
    assert assignment.ends_at != later
    assert PendingChange.objects.get().payload["assignment"] == str(assignment.pk)
