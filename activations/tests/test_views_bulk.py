"""The approvals inbox, paged and filtered, with bulk decisions (one reason, one code); and
activating several roles at once from My roles (one justification, one ticket, one code)."""

from datetime import timedelta

import pytest
from django.urls import reverse

from activations import services
from activations.models import ActivationRequest, Approval
from audit.models import AuditEvent
from tests.factories import UserFactory

from .test_views_support import (
    HOUR,
    NOON,
    XSS,
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
CLOCK_START = NOON
Status = ActivationRequest.Status
INBOX = reverse("activations:inbox")
SEVERAL = reverse("activations:activate_several")


def many_pending(count, approver, *, role=None, prefix="person"):
    role = role or role_with(approvers=[approver], name=f"{prefix} role")
    people = [UserFactory(username=f"{prefix}{n}") for n in range(count)]
    return [pending_request(person, role=role) for person in people]


def decide(client, requests, decision="approve", *, code="", reason="", query=""):
    data = {"requests": [str(request.pk) for request in requests], "decision": decision, "reason": reason}
    if code:
        data["otp_token"] = code
    return client.post(INBOX + query, data, follow=True)


# --- Bulk decisions --------------------------------------------------------------------------


def test_an_approver_approves_20_requests_with_one_code(approver, clock):
    requests = many_pending(20, approver)
    client = sign_in(approver)
    clock.shift(timedelta(minutes=10))  # the sign-in's check is no longer fresh: a code is needed

    response = decide(client, requests, code=next_code(client, clock), reason="Planned work")

    assert messages_of(response) == ["Approved: 20 requests."]
    assert {reloaded(request).status for request in requests} == {Status.GRANTED}
    assert AuditEvent.objects.filter(action="activation.approved", actor=approver).count() == 20
    assert set(Approval.objects.values_list("reason", flat=True)) == {"Planned work"}
    assert "Nothing is waiting for you." in page(response)


def test_a_bulk_denial_needs_a_reason_and_then_denies_each(approver, clock):
    requests = many_pending(3, approver)
    client = sign_in(approver)

    refused = decide(client, requests, "deny")
    assert "A reason is required to deny requests." in page(refused)
    assert not Approval.objects.exists()

    response = decide(client, requests, "deny", reason="Change freeze")
    assert messages_of(response) == ["Denied: 3 requests."]
    assert {reloaded(request).status for request in requests} == {Status.DENIED}


def test_a_wrong_code_decides_nothing(approver, clock):
    requests = many_pending(3, approver)
    client = sign_in(approver)
    clock.shift(timedelta(minutes=10))

    response = decide(client, requests, code="000000")

    assert response.status_code == 200
    assert "otp_token" in response.context["decision_form"].errors
    assert not Approval.objects.exists()
    assert {reloaded(request).status for request in requests} == {Status.PENDING_APPROVAL}
    html = page(response)
    assert all(f'value="{request.pk}" aria-label' in html for request in requests)
    assert html.count(" checked>") == 3  # what was ticked stays ticked


def test_a_request_decided_meanwhile_is_reported_and_the_others_are_decided(approver, clock):
    second = UserFactory(username="approver2")
    requests = many_pending(3, approver, role=role_with(approvers=[approver, second]))
    client = sign_in(approver)
    services.activation_deny(approver=second, request=requests[1], reason="No", mfa_verified_at=NOON)

    response = decide(client, requests)

    found = messages_of(response)
    assert found[0] == "Approved: 2 requests."
    assert found[1].startswith(
        f"Not decided: {requests[1].role} for {requests[1].requester} — This request was already denied by"
    )
    assert reloaded(requests[0]).status == reloaded(requests[2]).status == Status.GRANTED


def test_a_request_not_mine_to_decide_in_the_selection_is_refused(approver, admin, requester, clock):
    mine = many_pending(2, approver)
    not_mine = pending_request(requester, UserFactory(username="someone"))
    client = sign_in(admin)  # a PIM Administrator sees every request but decides only his own

    response = decide(client, [*mine, not_mine])

    assert any("You are not an approver of this request." in message for message in messages_of(response))
    assert reloaded(not_mine).status == Status.PENDING_APPROVAL
    assert {reloaded(request).status for request in mine} == {Status.PENDING_APPROVAL}  # not admin's


def test_the_requester_cannot_approve_their_own_request(requester, approver, clock):
    own = pending_request(requester, approver)
    theirs = pending_request(approver, requester)
    client = sign_in(requester)

    response = decide(client, [own, theirs])

    assert messages_of(response) == [
        "Approved: 1 request.",
        f"Not decided: {own.role} for {requester} — You cannot decide your own request.",
    ]
    assert reloaded(own).status == Status.PENDING_APPROVAL
    assert AuditEvent.objects.filter(action="activation.self_approval_refused", actor=requester).exists()


def test_an_unknown_or_hidden_request_id_is_left_alone(approver, outsider, clock):
    hidden = pending_request(outsider, UserFactory(username="other-approver"))
    client = sign_in(approver)

    response = decide(client, [hidden])

    assert messages_of(response) == [
        "A ticked request does not exist or is not yours to see; it was left alone."
    ]
    assert reloaded(hidden).status == Status.PENDING_APPROVAL


def test_nothing_ticked_or_garbage_ids_are_refused_with_a_message(approver, clock):
    many_pending(1, approver)
    client = sign_in(approver)

    assert "Tick at least one request." in page(client.post(INBOX, {"decision": "approve"}))
    response = client.post(INBOX, {"decision": "approve", "requests": ["not-an-id"]})
    assert "Tick requests from the list." in page(response)
    assert not Approval.objects.exists()


def test_an_outsider_posting_decides_nothing(outsider, approver, clock):
    requests = many_pending(2, approver)

    response = decide(sign_in(outsider), requests)

    assert len(messages_of(response)) == 2
    assert not Approval.objects.exists()


# --- Paging and filters ----------------------------------------------------------------------


def test_the_inbox_filters_by_role_requester_and_age(approver, clock):
    vault = role_with(approvers=[approver], name="Vault Keeper")
    ledger = role_with(approvers=[approver], name="Ledger Keeper")
    old = many_pending(1, approver, role=vault, prefix="early")[0]
    clock.shift(timedelta(hours=5))
    recent = many_pending(1, approver, role=ledger, prefix="late")[0]
    client = sign_in(approver)

    def listed(**query):
        return [activation.pk for activation in client.get(INBOX, query).context["activations"]]

    assert listed() == [old.pk, recent.pk]
    assert listed(role=str(vault.pk)) == [old.pk]
    assert listed(requester="late0") == [recent.pk]
    assert listed(age="4") == [old.pk]
    assert listed(age="24") == []
    assert "Nothing waiting for you matches these filters." in page(client.get(INBOX, {"age": "24"}))
    assert listed(role="not-a-role") == [old.pk, recent.pk]  # an unknown choice filters nothing


def test_the_inbox_is_paged_and_its_queries_do_not_grow_with_its_size(
    approver, clock, django_assert_num_queries
):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    many_pending(2, approver, prefix="a")
    client = sign_in(approver)
    client.get(INBOX)
    with CaptureQueriesContext(connection) as few:
        client.get(INBOX)
    many_pending(40, approver, prefix="b")
    with CaptureQueriesContext(connection) as many:
        response = client.get(INBOX)
    assert len(response.context["activations"]) == 25
    assert len(many) == len(few), "\n".join(query["sql"] for query in many.captured_queries)
    second = client.get(INBOX, {"page": "2", "age": ""})
    assert len(second.context["activations"]) == 17
    assert "?age=&amp;page=1" in page(second)  # the filters are kept across pages


def test_the_inbox_escapes_what_requesters_wrote(approver, clock):
    pending_request(UserFactory(username="writer"), approver, justification=XSS)

    html = page(sign_in(approver).get(INBOX))

    assert XSS not in html


# --- Activating several roles ----------------------------------------------------------------


def test_a_requester_activates_three_roles_in_one_step(requester, approver, clock):
    now_role = eligible_for(requester, role_with(name="Ledger Viewer"))
    approval_role = eligible_for(requester, role_with(name="Vault Keeper", approvers=[approver]))
    ticket_role = eligible_for(requester, role_with(name="Payroll Keeper", require_ticket=True))
    client = sign_in(requester)
    picked = [str(e.pk) for e in (now_role, approval_role, ticket_role)]
    clock.shift(timedelta(minutes=10))

    form = client.get(SEVERAL, {"eligible": picked})
    assert form.status_code == 200
    html = page(form)
    assert "Activate 3 roles" in html and 'name="otp_token"' in html
    data = {
        "confirm": "1",
        "eligible": picked,
        "justification": "Quarter close",
        "ticket_number": "CHG-1",
        "otp_token": next_code(client, clock),
        **{f"duration_{pk}": "60" for pk in picked},
    }
    response = client.post(SEVERAL, data, follow=True)

    found = messages_of(response)
    assert found[0].startswith("Ledger Viewer: active until ")
    assert found[1] == "Sent for approval to 1 approver."
    assert found[2].startswith("Payroll Keeper: active until ")
    requests = ActivationRequest.objects.filter(requester=requester)
    assert requests.count() == 3
    assert set(requests.values_list("justification", flat=True)) == {"Quarter close"}
    assert AuditEvent.objects.filter(action="activation.requested", actor=requester).count() == 1
    assert AuditEvent.objects.filter(action="activation.granted", actor=requester).count() == 2


def test_a_refused_role_is_named_and_the_others_are_activated(requester, clock):
    fine = eligible_for(requester, role_with(name="Ledger Viewer"))
    needs_ticket = eligible_for(requester, role_with(name="Payroll Keeper", require_ticket=True))
    client = sign_in(requester)
    picked = [str(fine.pk), str(needs_ticket.pk)]

    response = client.post(
        SEVERAL,
        {
            "confirm": "1",
            "eligible": picked,
            "justification": "x",
            **{f"duration_{pk}": "60" for pk in picked},
        },
        follow=True,
    )

    assert messages_of(response)[1] == "Payroll Keeper: A ticket number is required for this role."
    assert list(ActivationRequest.objects.values_list("role__name", flat=True)) == ["Ledger Viewer"]


def test_a_wrong_code_activates_nothing(requester, clock):
    eligibilities = [eligible_for(requester, role_with()) for _ in range(3)]
    client = sign_in(requester)
    clock.shift(timedelta(minutes=10))
    picked = [str(e.pk) for e in eligibilities]

    response = client.post(
        SEVERAL,
        {
            "confirm": "1",
            "eligible": picked,
            "justification": "x",
            "otp_token": "000000",
            **{f"duration_{pk}": "60" for pk in picked},
        },
    )

    assert response.status_code == 200 and "otp_token" in response.context["form"].errors
    assert not ActivationRequest.objects.exists()


def test_a_duration_beyond_a_roles_maximum_is_refused_on_the_form(requester, clock):
    short = eligible_for(requester, role_with(activation_max_duration=HOUR))
    client = sign_in(requester)

    response = client.post(
        SEVERAL,
        {"confirm": "1", "eligible": [str(short.pk)], "justification": "x", f"duration_{short.pk}": "120"},
    )

    assert "Choose one of the offered durations for" in page(response)
    assert not ActivationRequest.objects.exists()


def test_someone_elses_eligibility_cannot_be_picked(requester, outsider, clock):
    theirs = eligible_for(outsider, role_with())

    response = sign_in(requester).get(SEVERAL, {"eligible": [str(theirs.pk), "junk"]}, follow=True)

    assert messages_of(response) == ["Tick the roles to activate first."]
    assert not ActivationRequest.objects.exists()


def test_get_changes_nothing(requester, clock):
    eligible = eligible_for(requester, role_with())

    sign_in(requester).get(
        SEVERAL, {"eligible": [str(eligible.pk)], "confirm": "1", f"duration_{eligible.pk}": "60"}
    )

    assert not ActivationRequest.objects.exists()


def test_my_roles_offers_the_choice_only_for_roles_not_active_nor_pending(requester, approver, clock):
    free = eligible_for(requester, role_with(name="Ledger Viewer"))
    active = eligible_for(requester, role_with(name="Active Role"))
    granted_request(requester, role=active.role)
    waiting = eligible_for(requester, role_with(name="Waiting Role", approvers=[approver]))
    pending_request(requester, role=waiting.role)

    html = page(sign_in(requester).get(reverse("activations:my_roles")))

    assert f'name="eligible" value="{free.pk}"' in html
    assert f'name="eligible" value="{active.pk}"' not in html
    assert f'name="eligible" value="{waiting.pk}"' not in html
