"""The approvals inbox, the request page and the approver's decision."""

import uuid
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from accounts.services import user_deactivate
from accounts.tests.helpers import wrong_code
from activations import services
from activations.models import ActivationRequest, Approval
from roles.selectors import user_holds_role
from roles.services import role_settings_update
from tests.factories import UserFactory, totp_code

from .test_views_support import (
    ESCAPED_XSS,
    HOUR,
    NOON,
    XSS,
    csrf_client,
    decision_events,
    decisions,
    eligible_for,
    granted_request,
    messages_of,
    next_code,
    page,
    pending_request,
    reloaded,
    role_with,
    sign_in,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
CLOCK_START = NOON  # the shared `clock` fixture (root conftest) stops time here
Status = ActivationRequest.Status
INBOX = reverse("activations:inbox")


def detail_url(activation) -> str:
    return reverse("activations:request_detail", args=[activation.pk])


def decide_url(activation) -> str:
    return reverse("activations:decide", args=[activation.pk])


# --- Inbox ---------------------------------------------------------------------------------


def test_the_inbox_lists_requests_waiting_for_me_oldest_first(requester, approver, reviewer, clock):
    older = pending_request(requester, approver, justification="Rotate the keys")
    clock.shift(timedelta(minutes=5))
    newer = pending_request(reviewer, approver, justification="Quarter close")
    not_mine = pending_request(requester, reviewer)
    decided = pending_request(reviewer, approver)
    services.activation_deny(approver=approver, request=decided, reason="No", mfa_verified_at=NOON)
    clock.shift(timedelta(minutes=5))

    response = sign_in(approver).get(INBOX)

    assert [a.pk for a in response.context["activations"]] == [older.pk, newer.pk]
    html = page(response)
    assert "Rotate the keys" in html and "Quarter close" in html
    assert requester.label.replace("<", "&lt;").replace(">", "&gt;") in html
    assert "10\xa0minutes" in html  # age of the older request
    assert f'data-request="{not_mine.pk}"' not in html
    assert '<span class="badge" aria-label="2 waiting">2</span>' in html  # the nav count


def test_the_inbox_leaves_out_what_i_approved_and_what_timed_out(requester, approver, reviewer, clock):
    two_needed = pending_request(requester, approver, reviewer, approvals_required=2)
    services.activation_approve(approver=approver, request=two_needed, mfa_verified_at=NOON)
    pending_request(reviewer, approver, approval_timeout=timedelta(hours=1))
    clock.shift(timedelta(hours=2))  # past its deadline; the timeout job has not run yet

    assert list(sign_in(approver).get(INBOX).context["activations"]) == []
    assert [a.pk for a in sign_in(reviewer).get(INBOX).context["activations"]] == [two_needed.pk]


def test_the_inbox_escapes_the_justification(requester, approver, clock):
    pending_request(requester, approver, justification=XSS)

    html = page(sign_in(approver).get(INBOX))

    assert XSS not in html and ESCAPED_XSS in html


def test_the_inbox_runs_the_same_queries_for_1_or_25_requests(requester, approver, clock):
    pending_request(requester, approver)
    client = sign_in(approver)
    client.get(INBOX)  # warm-up: per-process caches
    with CaptureQueriesContext(connection) as one:
        assert len(client.get(INBOX).context["activations"]) == 1
    for n in range(24):
        pending_request(UserFactory(username=f"asker{n}"), approver, approvals_required=1)
    with CaptureQueriesContext(connection) as many:
        assert len(client.get(INBOX).context["activations"]) == 25
    assert len(many) == len(one), "\n".join(q["sql"] for q in many.captured_queries)


# --- Request page visibility ---------------------------------------------------------------


@pytest.mark.parametrize("viewer", ["requester", "approver", "admin", "auditor"])
def test_the_request_page_is_shown_to_requester_approvers_and_pim_staff(
    viewer, requester, approver, admin, auditor, clock
):
    activation = pending_request(requester, approver, justification="Rotate the keys")
    user = {"requester": requester, "approver": approver, "admin": admin, "auditor": auditor}[viewer]

    response = sign_in(user).get(detail_url(activation))

    assert response.status_code == 200
    html = page(response)
    assert "Rotate the keys" in html and activation.role.name in html
    assert 'data-status="pending_approval"' in html
    assert ("decision-form" in html) == (viewer == "approver")


def test_an_outsider_gets_404_for_a_request_and_its_actions(requester, approver, outsider, clock):
    activation = pending_request(requester, approver)
    client = sign_in(outsider)

    assert client.get(detail_url(activation)).status_code == 404
    for name in ("decide", "cancel", "deactivate", "revoke"):
        url = reverse(f"activations:{name}", args=[activation.pk])
        assert client.post(url, {"decision": "approve", "reason": "x"}).status_code == 404
    assert client.get(reverse("activations:request_detail", args=[uuid.uuid4()])).status_code == 404
    assert reloaded(activation).status == Status.PENDING_APPROVAL
    assert decisions(activation) == []


def test_the_request_page_shows_what_who_why_and_history(requester, approver, reviewer, clock):
    role = role_with(approvers=[approver, reviewer], approvals_required=2, name="Vault")
    earlier = granted_request(requester, role=role_with(name="Other"))  # another role: not listed
    activation = pending_request(requester, role=role, justification="Rotate\nthe keys")
    services.activation_approve(
        approver=reviewer, request=activation, reason="Fine by me", mfa_verified_at=NOON
    )

    html = page(sign_in(approver).get(detail_url(activation)))

    assert "Rotate<br>the keys" in html
    assert "1 hour" in html and "1 of 2 needed" in html
    assert "Approved · MFA verified at 12:00:00 · Fine by me" in html
    assert reviewer.label.replace("<", "&lt;").replace(">", "&gt;") in html
    assert str(earlier.pk) not in html


def test_the_request_page_lists_the_requesters_last_five_activations_of_the_role(requester, approver, clock):
    role = role_with(approvers=[approver])
    earlier = []
    for _ in range(6):
        activation = pending_request(requester, role=role)
        services.activation_cancel(actor=requester, request=activation)
        earlier.append(activation)
        clock.shift(timedelta(minutes=1))
    current = pending_request(requester, role=role)

    response = sign_in(approver).get(detail_url(current))

    assert [a.pk for a in response.context["recent"]] == [a.pk for a in reversed(earlier[1:])]


def test_the_request_page_escapes_the_justification(requester, approver, clock):
    activation = pending_request(requester, approver, justification=XSS)

    for user in (requester, approver):
        html = page(sign_in(user).get(detail_url(activation)))
        assert XSS not in html and ESCAPED_XSS in html


def test_a_granted_request_shows_the_time_left(requester, clock):
    activation = granted_request(requester)
    clock.shift(timedelta(minutes=15))

    html = page(sign_in(requester).get(detail_url(activation)))

    assert 'data-status="granted"' in html and "45\xa0minutes</strong> left" in html
    assert "deactivate-form" in html


def test_after_its_end_a_granted_request_shows_as_expired_before_the_job_runs(requester, clock):
    activation = granted_request(requester)
    clock.shift(timedelta(hours=2))

    html = page(sign_in(requester).get(detail_url(activation)))

    assert 'data-status="expired"' in html and "deactivate-form" not in html


# --- Deciding ------------------------------------------------------------------------------


def test_an_approver_approves_and_the_role_becomes_active(requester, approver, clock):
    activation = pending_request(requester, approver, name="Vault")
    client = sign_in(approver)

    response = client.post(decide_url(activation), {"decision": "approve", "reason": "ok"}, follow=True)

    activation = reloaded(activation)
    assert activation.status == Status.GRANTED
    assert response.redirect_chain == [(detail_url(activation), 302)]
    assert messages_of(response) == [f"Approved: Vault is active for {requester} until 2026-03-02 13:00 UTC."]
    assert user_holds_role(user=requester, role=activation.role)
    approval = Approval.objects.get(request=activation)
    assert (approval.approver, approval.mfa_verified_at) == (approver, NOON)


def test_a_stale_session_needs_a_new_code_to_decide(requester, approver, clock):
    activation = pending_request(requester, approver)
    client = sign_in(approver)
    clock.shift(timedelta(minutes=6))

    refused = client.post(decide_url(activation), {"decision": "approve"})
    assert "Enter the 6-digit code from your authenticator app." in page(refused)
    wrong = client.post(
        decide_url(activation), {"decision": "approve", "otp_token": wrong_code(client.device)}
    )
    assert "That code is wrong or has already been used." in page(wrong)
    assert reloaded(activation).status == Status.PENDING_APPROVAL and decisions(activation) == []

    client.post(decide_url(activation), {"decision": "approve", "otp_token": next_code(client, clock)})
    assert reloaded(activation).status == Status.GRANTED


def test_a_replayed_code_cannot_decide(requester, approver, clock):
    activation = pending_request(requester, approver)
    client = sign_in(approver)

    response = client.post(
        decide_url(activation), {"decision": "approve", "otp_token": totp_code(client.device)}
    )

    assert "That code is wrong or has already been used." in page(response)
    assert reloaded(activation).status == Status.PENDING_APPROVAL


def test_deny_without_a_reason_is_refused(requester, approver, clock):
    activation = pending_request(requester, approver)
    client = sign_in(approver)

    response = client.post(decide_url(activation), {"decision": "deny", "reason": "  "})

    assert response.status_code == 200
    assert "A reason is required to deny a request." in page(response)
    assert reloaded(activation).status == Status.PENDING_APPROVAL and decisions(activation) == []


def test_deny_with_a_reason_ends_the_request(requester, approver, clock):
    activation = pending_request(requester, approver)

    response = sign_in(approver).post(
        decide_url(activation), {"decision": "deny", "reason": "Change freeze"}, follow=True
    )

    activation = reloaded(activation)
    assert activation.status == Status.DENIED and activation.decision_reason == "Change freeze"
    assert messages_of(response) == [f"Denied. {requester} will be told."]


@pytest.mark.parametrize("decision", ["", "grant", "approve'--"])
def test_an_unknown_decision_is_refused(decision, requester, approver, clock):
    activation = pending_request(requester, approver)

    response = sign_in(approver).post(decide_url(activation), {"decision": decision})

    assert "Choose Approve or Deny." in page(response)
    assert reloaded(activation).status == Status.PENDING_APPROVAL


def test_with_two_approvals_needed_the_first_is_recorded_and_waits(requester, approver, reviewer, clock):
    activation = pending_request(requester, approver, reviewer, approvals_required=2)

    response = sign_in(approver).post(decide_url(activation), {"decision": "approve"}, follow=True)

    assert messages_of(response) == ["Your approval is recorded; 1 more approval needed."]
    assert reloaded(activation).status == Status.PENDING_APPROVAL
    assert "decision-form" not in page(response)  # no second vote


def test_a_second_decider_is_told_who_decided_and_how(requester, approver, reviewer, clock):
    activation = pending_request(requester, approver, reviewer)
    client = sign_in(reviewer)  # the page is open with the decision form
    assert "decision-form" in page(client.get(detail_url(activation)))
    services.activation_approve(approver=approver, request=activation, mfa_verified_at=NOON)

    response = client.post(decide_url(activation), {"decision": "deny", "reason": "No"}, follow=True)

    assert messages_of(response) == [
        f"This request was already granted by {approver} at 2026-03-02 12:00 UTC."
    ]
    assert reloaded(activation).status == Status.GRANTED
    assert [a.approver for a in decisions(activation)] == [approver]


@pytest.mark.parametrize("route", ["decide", "decide-with-code", "decide-get", "detail-get-params"])
def test_the_requester_cannot_approve_their_own_request_by_any_route(route, requester, approver, clock):
    # Even when the role's settings name the requester as an approver.
    activation = pending_request(requester, role=role_with(approvers=[requester, approver]))
    client = sign_in(requester)
    data = {"decision": "approve", "reason": "me"}

    if route == "decide":
        response = client.post(decide_url(activation), data, follow=True)
        assert messages_of(response) == ["You cannot decide your own request."]
    elif route == "decide-with-code":
        client.post(decide_url(activation), {**data, "otp_token": next_code(client, clock)})
    elif route == "decide-get":
        client.get(decide_url(activation), data)
    else:
        client.get(detail_url(activation), data)

    assert "decision-form" not in page(client.get(detail_url(activation)))
    assert reloaded(activation).status == Status.PENDING_APPROVAL
    assert decisions(activation) == []
    # A try leaves a record of the refusal (outcome denied), looking does not.
    tried = route in ("decide", "decide-with-code")
    assert decision_events(activation) == (["activation.self_approval_refused"] if tried else [])


def test_someone_who_may_see_but_not_decide_is_refused(requester, approver, auditor, clock):
    activation = pending_request(requester, approver)

    response = sign_in(auditor).post(decide_url(activation), {"decision": "approve"}, follow=True)

    assert messages_of(response) == ["You are not an approver of this request."]
    assert reloaded(activation).status == Status.PENDING_APPROVAL
    assert decision_events(activation) == ["activation.decision_refused"]


def test_a_deactivated_approver_cannot_decide(requester, approver, reviewer, clock):
    activation = pending_request(requester, approver, reviewer)
    client = sign_in(approver)
    user_deactivate(actor=None, user=approver, reason="Left the company")

    response = client.post(decide_url(activation), {"decision": "approve"})

    assert response.status_code == 302 and response.url.startswith(reverse("accounts:login"))
    assert reloaded(activation).status == Status.PENDING_APPROVAL and decisions(activation) == []


def test_a_timed_out_request_cannot_be_decided(requester, approver, clock):
    activation = pending_request(requester, approver, approval_timeout=timedelta(hours=1))
    client = sign_in(approver)
    clock.shift(timedelta(hours=2))

    response = client.post(
        decide_url(activation), {"decision": "approve", "otp_token": next_code(client, clock)}, follow=True
    )

    assert messages_of(response) == ["This request has timed out; the requester must ask again."]
    assert 'data-status="timed_out"' in page(response)
    assert decisions(activation) == []


def test_get_on_the_decide_url_changes_nothing(requester, approver, clock):
    activation = pending_request(requester, approver)
    client = sign_in(approver)

    for method in (client.get, client.head):
        response = method(decide_url(activation), {"decision": "approve"})
        assert response.status_code == 302 and response.url == detail_url(activation)
    assert reloaded(activation).status == Status.PENDING_APPROVAL and decisions(activation) == []


# --- CSRF on every state-changing view -----------------------------------------------------


def test_deciding_enforces_csrf(requester, approver, clock):
    activation = pending_request(requester, approver)
    client = csrf_client(sign_in(approver))

    assert client.post(decide_url(activation), {"decision": "approve"}).status_code == 403
    assert reloaded(activation).status == Status.PENDING_APPROVAL and decisions(activation) == []


def test_cancel_deactivate_and_revoke_enforce_csrf(requester, approver, admin, clock):
    pending = pending_request(requester, approver)
    granted = granted_request(requester)
    as_requester = csrf_client(sign_in(requester))

    assert as_requester.post(reverse("activations:cancel", args=[pending.pk])).status_code == 403
    assert as_requester.post(reverse("activations:deactivate", args=[granted.pk])).status_code == 403
    as_admin = csrf_client(sign_in(admin))
    assert as_admin.post(reverse("activations:revoke", args=[granted.pk]), {"reason": "x"}).status_code == 403

    assert reloaded(pending).status == Status.PENDING_APPROVAL
    assert reloaded(granted).status == Status.GRANTED


# --- Decisions re-check the live policy --------------------------------------------------------


def test_the_approver_is_told_when_the_roles_new_maximum_capped_the_duration(requester, approver, clock):
    role = role_with(approvers=[approver], name="Vault", activation_max_duration=24 * HOUR)
    activation = services.activation_request(
        requester=requester,
        eligible=eligible_for(requester, role),
        duration=24 * HOUR,
        justification="Migration weekend",
        mfa_verified_at=NOON,
    )
    role_settings_update(actor=None, role=role, changes={"activation_max_duration": HOUR})
    client = sign_in(approver)

    response = client.post(decide_url(activation), {"decision": "approve", "reason": "ok"}, follow=True)

    assert reloaded(activation).ends_at == NOON + HOUR
    assert messages_of(response) == [
        f"Approved: Vault is active for {requester} until 2026-03-02 13:00 UTC. The duration was capped "
        "to 1 hour, the role's maximum now (24 hours were asked for)."
    ]
    assert 'id="duration-capped"' in page(response)


def test_an_approver_removed_from_the_role_is_refused_with_a_clear_message(
    requester, approver, reviewer, clock
):
    role = role_with(approvers=[approver])
    activation = pending_request(requester, role=role)
    role_settings_update(actor=None, role=role, changes={}, approvers=[reviewer])
    client = sign_in(approver)

    response = client.post(decide_url(activation), {"decision": "approve", "reason": "ok"}, follow=True)

    assert any(
        "You are no longer an approver of" in text for text in messages_of(response) + [page(response)]
    )
    assert reloaded(activation).status == Status.PENDING_APPROVAL and decisions(activation) == []
    assert decision_events(activation) == ["activation.approvers_added", "activation.decision_refused"]
