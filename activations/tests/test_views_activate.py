"""The Activate page: the form follows the role's settings, every refusal is a message on the
page and changes nothing."""

import uuid
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from accounts.tests.helpers import sign_in_password, wrong_code
from activations.models import ActivationRequest
from roles.selectors import user_holds_role
from tests.factories import DirectoryGroupFactory, EligibleAssignmentFactory, UserFactory, totp_code

from .test_views_support import (
    NOON,
    XSS,
    csrf_client,
    eligible_for,
    messages_of,
    next_code,
    page,
    role_with,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
CLOCK_START = NOON  # the shared `clock` fixture (root conftest) stops time here


def activate_url(eligible) -> str:
    return reverse("activations:activate", args=[eligible.pk])


def form_data(**overrides) -> dict:
    return {"duration": "60", "justification": "Incident 42", **overrides}


# --- The form ------------------------------------------------------------------------------


def test_the_form_shows_what_the_role_requires(requester, approver, verified_client, clock):
    role = role_with(
        approvers=[approver], require_ticket=True, activation_max_duration=timedelta(hours=4), name="Vault"
    )
    eligible = eligible_for(requester, role)

    response = verified_client(requester).get(activate_url(eligible))

    assert response.status_code == 200
    html = page(response)
    assert '<option value="240" selected>4 hours</option>' in html  # the maximum by default
    assert '<option value="300"' not in html
    for name in ("justification", "ticket_number", "ticket_system", "starts_at", "scope", "otp_token"):
        assert f'name="{name}"' in html
    assert 'type="datetime-local"' in html and "read in your time zone" in html
    assert 'name="scope" value="/"' in html
    assert "Needs 1 approval;" in html
    assert "Request activation" in html


def test_ticket_and_code_fields_are_left_out_when_the_role_does_not_ask_for_them(
    requester, verified_client, clock
):
    eligible = eligible_for(requester, role_with(require_mfa=False, require_justification=False))

    html = page(verified_client(requester).get(activate_url(eligible)))

    assert 'name="ticket_number"' not in html and 'name="otp_token"' not in html
    assert ">Activate</button>" in html


def test_durations_stop_where_the_eligibility_ends(requester, verified_client, clock):
    eligible = eligible_for(requester, role_with(), ends_at=NOON + timedelta(hours=2, minutes=10))

    response = verified_client(requester).get(activate_url(eligible))

    assert [value for value, _ in response.context["form"].fields["duration"].choices] == [
        30,
        60,
        90,
        120,
        125,
    ]
    assert response.context["form"].fields["duration"].initial == 125


@pytest.mark.parametrize("whose", ["outsider", "unknown", "expired"])
def test_an_eligibility_the_user_does_not_hold_is_404(whose, requester, outsider, verified_client, clock):
    role = role_with()
    target = {
        "outsider": lambda: eligible_for(outsider, role).pk,
        "unknown": uuid.uuid4,
        "expired": lambda: (
            eligible_for(
                requester, role, starts_at=NOON - timedelta(days=9), ends_at=NOON - timedelta(days=1)
            ).pk
        ),
    }[whose]()
    client = verified_client(requester)

    assert client.get(reverse("activations:activate", args=[target])).status_code == 404
    assert client.post(reverse("activations:activate", args=[target]), form_data()).status_code == 404
    assert not ActivationRequest.objects.exists()


def test_a_person_without_an_authenticator_is_sent_to_enrol_first(client, clock):
    newcomer = UserFactory(username="newcomer")
    eligible = eligible_for(newcomer, role_with())
    sign_in_password(client, newcomer)

    response = client.get(activate_url(eligible))

    assert response.status_code == 302
    assert response.url.startswith(reverse("accounts:mfa_enrol"))
    assert client.post(activate_url(eligible), form_data()).status_code == 302
    assert not ActivationRequest.objects.exists()


# --- Submitting ----------------------------------------------------------------------------


def test_a_role_without_approval_is_active_at_once_until_the_time_said(requester, verified_client, clock):
    eligible = eligible_for(requester, role_with(name="Payroll Administrator"))
    client = verified_client(requester)

    response = client.post(activate_url(eligible), form_data(duration="90"), follow=True)

    activation = ActivationRequest.objects.get()
    assert response.redirect_chain == [(activation.get_absolute_url(), 302)]
    assert activation.status == ActivationRequest.Status.GRANTED
    assert activation.ends_at == NOON + timedelta(minutes=90)
    assert messages_of(response) == ["Payroll Administrator: active until 13:30 UTC."]
    assert user_holds_role(user=requester, role=eligible.role)
    # The sign-in a moment ago is the fresh MFA check the role requires.
    assert activation.mfa_verified_at == NOON


def test_a_role_needing_approval_is_sent_to_its_approvers(
    requester, approver, reviewer, verified_client, clock, django_capture_on_commit_callbacks
):
    eligible = eligible_for(requester, role_with(approvers=[approver, reviewer]))
    client = verified_client(requester)

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(activate_url(eligible), form_data(), follow=True)

    activation = ActivationRequest.objects.get()
    assert activation.status == ActivationRequest.Status.PENDING_APPROVAL
    assert messages_of(response) == ["Sent for approval to 2 approvers."]
    assert sorted(message.to[0] for message in mail.outbox) == [approver.email, reviewer.email]
    assert not user_holds_role(user=requester, role=eligible.role)


def test_a_fresh_code_typed_in_is_checked_and_recorded(requester, verified_client, clock):
    eligible = eligible_for(requester, role_with())
    client = verified_client(requester)
    code = next_code(client, clock)

    client.post(activate_url(eligible), form_data(otp_token=code))

    assert ActivationRequest.objects.get().mfa_verified_at == NOON + timedelta(seconds=30)


def test_a_group_eligibility_can_be_activated(requester, verified_client, clock):
    group = DirectoryGroupFactory()
    group.members.add(requester)
    eligible = EligibleAssignmentFactory(user=None, group=group, role=role_with())

    verified_client(requester).post(activate_url(eligible), form_data())

    assert ActivationRequest.objects.get().status == ActivationRequest.Status.GRANTED


def test_a_scheduled_start_is_read_as_utc_whatever_the_active_time_zone(requester, verified_client, clock):
    eligible = eligible_for(requester, role_with())
    client = verified_client(requester)

    with timezone.override("Europe/Berlin"):
        response = client.post(activate_url(eligible), form_data(starts_at="2026-03-02T15:00"), follow=True)

    activation = ActivationRequest.objects.get()
    assert activation.starts_at == NOON + timedelta(hours=3)
    assert activation.active_assignment.starts_at == NOON + timedelta(hours=3)
    assert messages_of(response) == [f"{eligible.role}: scheduled from 15:00 until 16:00 UTC."]


def test_a_narrower_scope_is_kept(requester, verified_client, clock):
    eligible = eligible_for(requester, role_with(), scope="/apps/payroll")

    verified_client(requester).post(activate_url(eligible), form_data(scope="/apps/payroll/eu"))

    assert ActivationRequest.objects.get().scope == "/apps/payroll/eu"


def test_extra_fields_cannot_set_status_approvers_or_requester(
    requester, approver, outsider, verified_client, clock
):
    eligible = eligible_for(requester, role_with(approvers=[approver]))
    tampered = form_data(
        status="granted",
        approver=str(outsider.pk),
        approvers=str(outsider.pk),
        requester=str(outsider.pk),
        approvals_required="0",
        decide_by="2099-01-01T00:00",
        mfa_verified_at="2099-01-01T00:00",
    )

    verified_client(requester).post(activate_url(eligible), tampered)

    activation = ActivationRequest.objects.get()
    assert activation.status == ActivationRequest.Status.PENDING_APPROVAL
    assert activation.requester == requester
    assert activation.approvals_required == 1
    assert list(activation.approvers.values_list("user_id", flat=True)) == [approver.pk]
    assert activation.decide_by == NOON + timedelta(hours=24)


# --- Refusals: a message on the page, nothing created ---------------------------------------

MAX_MESSAGE = "Choose one of the offered durations (at most 8 hours)."


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"duration": "600"}, MAX_MESSAGE),
        ({"duration": "-60"}, MAX_MESSAGE),
        ({"duration": "0"}, MAX_MESSAGE),
        ({"duration": "9" * 5000}, MAX_MESSAGE),
        ({"duration": "1e9"}, MAX_MESSAGE),
        ({"duration": ""}, "This field is required."),
        ({"justification": ""}, "A justification is required for this role."),
        ({"justification": "   "}, "A justification is required for this role."),
        ({"justification": "x" * 2001}, "The justification is at most 2000 characters."),
        ({"justification": "why\x07not"}, "The justification contains control characters."),
        ({"justification": "nul\x00byte"}, "Null characters are not allowed."),
        ({"starts_at": "2026-03-01T12:00"}, "A scheduled start cannot be in the past."),
        ({"starts_at": "2026-05-01T12:00"}, "A start can be scheduled at most 30 days ahead."),
        ({"starts_at": "9999-12-31T23:59"}, "A start can be scheduled at most 30 days ahead."),
        ({"starts_at": "tomorrow"}, "Enter a date and time such as 2030-01-31 14:30."),
        (
            {"scope": "/apps/other"},
            "You are eligible at /apps/payroll only; choose that scope or one below it.",
        ),
        ({"scope": "/nonsense/../x"}, "not a valid scope: . and .. segments are not allowed"),
        ({"scope": "/apps/" + "x" * 500}, "A scope is at most 400 characters."),
        (
            {"otp_token": "12"},
            "Enter the 6-digit code from your authenticator app, or one of your recovery codes.",
        ),
        ({"otp_token": "1" * 5000}, "That is far too long to be a code."),
    ],
)
def test_bad_input_is_refused_with_a_message_and_creates_nothing(
    changes, message, requester, verified_client, clock
):
    eligible = eligible_for(requester, role_with(), scope="/apps/payroll")

    response = verified_client(requester).post(activate_url(eligible), form_data(**changes))

    assert response.status_code == 200
    assert message in page(response).replace("&quot;", '"').replace("&#x27;", "'").replace("“", "").replace(
        "”", ""
    )
    assert not ActivationRequest.objects.exists()


def test_a_ticket_number_is_required_when_the_role_says_so(requester, verified_client, clock):
    eligible = eligible_for(requester, role_with(require_ticket=True))
    client = verified_client(requester)

    response = client.post(activate_url(eligible), form_data(ticket_system="Jira"))

    assert "A ticket number is required for this role." in page(response)
    assert not ActivationRequest.objects.exists()
    client.post(activate_url(eligible), form_data(ticket_system="Jira", ticket_number="OPS-7"))
    assert ActivationRequest.objects.get().ticket_number == "OPS-7"


def test_an_optional_justification_may_be_left_out(requester, verified_client, clock):
    eligible = eligible_for(requester, role_with(require_justification=False))

    verified_client(requester).post(activate_url(eligible), form_data(justification=""))

    assert ActivationRequest.objects.get().justification == ""


def test_a_wrong_code_is_refused_and_creates_nothing(requester, verified_client, clock):
    eligible = eligible_for(requester, role_with())
    client = verified_client(requester)

    response = client.post(activate_url(eligible), form_data(otp_token=wrong_code(client.device)))

    assert "That code is wrong or has already been used." in page(response)
    assert not ActivationRequest.objects.exists()


def test_a_replayed_code_is_refused_and_creates_nothing(requester, verified_client, clock):
    eligible = eligible_for(requester, role_with())
    client = verified_client(requester)  # signs in with the code of this 30-second step

    response = client.post(activate_url(eligible), form_data(otp_token=totp_code(client.device)))

    assert "That code is wrong or has already been used." in page(response)
    assert not ActivationRequest.objects.exists()


def test_a_code_used_for_a_step_up_cannot_be_used_again(requester, verified_client, clock):
    eligible = eligible_for(requester, role_with())
    client = verified_client(requester)
    clock.shift(timedelta(minutes=10))
    code = next_code(client, clock)
    client.post(reverse("accounts:verify"), {"otp_token": code})  # used once here

    response = client.post(activate_url(eligible), form_data(otp_token=code))

    assert "That code is wrong or has already been used." in page(response)
    assert not ActivationRequest.objects.exists()


def test_a_refused_form_does_not_use_up_the_code(requester, verified_client, clock):
    eligible = eligible_for(requester, role_with())
    client = verified_client(requester)
    code = next_code(client, clock)

    client.post(activate_url(eligible), form_data(otp_token=code, duration="9999"))
    client.post(activate_url(eligible), form_data(otp_token=code))

    assert ActivationRequest.objects.get().mfa_verified_at == timezone.now()


def test_after_the_step_up_window_a_new_code_is_needed(requester, verified_client, clock):
    eligible = eligible_for(requester, role_with())
    client = verified_client(requester)
    clock.shift(timedelta(minutes=6))

    refused = client.post(activate_url(eligible), form_data())

    assert "Enter the 6-digit code from your authenticator app." in page(refused)
    assert not ActivationRequest.objects.exists()
    client.post(activate_url(eligible), form_data(otp_token=next_code(client, clock)))
    assert ActivationRequest.objects.get().mfa_verified_at == timezone.now()


def test_a_role_without_mfa_needs_no_code_even_long_after_sign_in(requester, verified_client, clock):
    eligible = eligible_for(requester, role_with(require_mfa=False))
    client = verified_client(requester)
    clock.shift(timedelta(hours=2))

    client.post(activate_url(eligible), form_data())

    assert ActivationRequest.objects.get().status == ActivationRequest.Status.GRANTED


def test_activating_an_active_role_again_says_so(requester, verified_client, clock):
    eligible = eligible_for(requester, role_with(name="Vault"))
    client = verified_client(requester)
    client.post(activate_url(eligible), form_data())

    response = client.post(activate_url(eligible), form_data())

    assert "Vault is already active for you at / until 13:00 UTC." in page(response)
    assert ActivationRequest.objects.count() == 1


def test_a_role_nobody_else_can_approve_is_refused_with_the_reason(requester, verified_client, clock):
    eligible = eligible_for(requester, role_with(approvers=[requester]))

    response = verified_client(requester).post(activate_url(eligible), form_data())

    assert "nobody other than you can approve it" in page(response)
    assert not ActivationRequest.objects.exists()


def test_justification_html_is_shown_as_text_when_the_form_comes_back(requester, verified_client, clock):
    eligible = eligible_for(requester, role_with())

    response = verified_client(requester).post(
        activate_url(eligible), form_data(justification=XSS, duration="9999")
    )

    assert XSS not in page(response)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page(response)


def test_the_activate_form_enforces_csrf(requester, verified_client, clock):
    eligible = eligible_for(requester, role_with())
    client = csrf_client(verified_client(requester))

    assert client.post(activate_url(eligible), form_data()).status_code == 403
    assert not ActivationRequest.objects.exists()


def test_a_wrong_optional_code_gives_one_consistent_message(requester, verified_client, clock):
    """Within the step-up window the code is optional: a wrong one is refused without the page
    also saying that no code is needed as if nothing had gone wrong."""
    eligible = eligible_for(requester, role_with())
    client = verified_client(requester)

    response = client.post(activate_url(eligible), form_data(otp_token=wrong_code(client.device)))

    text = page(response)
    assert "a code is not needed now" not in text
    assert text.count('class="error"') == 2  # the refusal and what to do, one list
    assert "That code is wrong or has already been used." in text
    assert "clear the field, or type the code your app shows now." in text
    assert not ActivationRequest.objects.exists()
