"""My requests, cancel / deactivate / revoke, extension and renewal, and the entry points on
My roles."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from activations import services
from activations.models import ActivationRequest
from roles.models import EligibleAssignment
from roles.selectors import user_holds_role
from tests.factories import DirectoryGroupFactory, EligibleAssignmentFactory

from .test_views_support import (
    ESCAPED_XSS,
    NOON,
    XSS,
    csrf_client,
    eligible_for,
    granted_request,
    messages_of,
    page,
    pending_request,
    reloaded,
    role_with,
    sign_in,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
CLOCK_START = NOON  # the shared `clock` fixture (root conftest) stops time here
Status = ActivationRequest.Status
MY_REQUESTS = reverse("activations:my_requests")
MY_ROLES = reverse("activations:my_roles")


def url(name, obj) -> str:
    return reverse(f"activations:{name}", args=[obj.pk])


# --- My requests ---------------------------------------------------------------------------


def test_my_requests_lists_mine_newest_first_with_status_and_time_left(requester, approver, outsider, clock):
    granted = granted_request(requester, role=role_with(name="Vault"))
    clock.shift(timedelta(minutes=10))
    pending = pending_request(requester, approver, name="Ledger")
    pending_request(outsider, approver, name="Not mine")
    clock.shift(timedelta(minutes=5))

    response = sign_in(requester).get(MY_REQUESTS)

    assert [a.pk for a in response.context["activations"]] == [pending.pk, granted.pk]
    html = page(response)
    assert "Not mine" not in html
    assert 'data-status="pending_approval"' in html and 'data-status="granted"' in html
    assert "45\xa0minutes" in html  # time left of the granted one
    assert url("cancel", pending) in html and url("deactivate", granted) in html


def test_my_requests_escapes_the_justification_and_role_name(requester):
    granted_request(requester, role=role_with(name=XSS + " role"), justification=XSS)

    html = page(sign_in(requester).get(MY_REQUESTS))

    assert XSS not in html and ESCAPED_XSS in html


def test_my_requests_runs_the_same_queries_for_1_or_25_requests(requester, approver, clock):
    granted_request(requester)
    client = sign_in(requester)
    client.get(MY_REQUESTS)  # warm-up
    with CaptureQueriesContext(connection) as one:
        assert len(client.get(MY_REQUESTS).context["activations"]) == 1
    for n in range(24):
        clock.shift(timedelta(seconds=1))
        if n % 3 == 0:
            pending_request(requester, approver)
        elif n % 3 == 1:
            granted_request(requester)
        else:
            services.activation_cancel(actor=requester, request=pending_request(requester, approver))
    with CaptureQueriesContext(connection) as many:
        assert len(client.get(MY_REQUESTS).context["activations"]) == 25
    assert len(many) == len(one), "\n".join(q["sql"] for q in many.captured_queries)


def test_my_requests_is_paginated(requester, clock):
    for _ in range(27):
        granted_request(requester)
        clock.shift(timedelta(seconds=1))
    client = sign_in(requester)

    first, second = client.get(MY_REQUESTS), client.get(MY_REQUESTS, {"page": "2"})

    assert len(first.context["activations"]) == 25 and len(second.context["activations"]) == 2
    assert client.get(MY_REQUESTS, {"page": "999"}).context["page"].number == 2
    assert client.get(MY_REQUESTS, {"page": "x'--"}).status_code == 200


# --- Cancel, deactivate, revoke ------------------------------------------------------------


def test_the_requester_cancels_a_pending_request_from_my_requests(requester, approver):
    activation = pending_request(requester, approver)

    response = sign_in(requester).post(url("cancel", activation), {"next": MY_REQUESTS}, follow=True)

    assert response.redirect_chain == [(MY_REQUESTS, 302)]
    assert messages_of(response) == ["Request canceled."]
    assert reloaded(activation).status == Status.CANCELED


def test_cancel_never_redirects_outside_the_portal(requester, approver):
    activation = pending_request(requester, approver)

    response = sign_in(requester).post(url("cancel", activation), {"next": "https://evil.example/"})

    assert response.url == activation.get_absolute_url()


def test_an_approver_cannot_cancel_the_request(requester, approver):
    activation = pending_request(requester, approver)

    response = sign_in(approver).post(url("cancel", activation), follow=True)

    assert messages_of(response) == ["Only the requester or a PIM Administrator can cancel this request."]
    assert reloaded(activation).status == Status.PENDING_APPROVAL


def test_canceling_twice_says_why_not(requester, approver):
    activation = pending_request(requester, approver)
    client = sign_in(requester)
    client.post(url("cancel", activation), follow=True)

    response = client.post(url("cancel", activation), follow=True)

    assert messages_of(response) == ["This request is canceled; it cannot become canceled."]


def test_the_requester_deactivates_early_and_loses_the_role(requester):
    activation = granted_request(requester, role=role_with(name="Vault"))

    response = sign_in(requester).post(
        url("deactivate", activation), {"next": MY_ROLES, "confirm": "yes"}, follow=True
    )

    assert response.redirect_chain == [(MY_ROLES, 302)]
    assert messages_of(response) == ["Deactivated: you no longer hold Vault at /."]
    assert reloaded(activation).status == Status.DEACTIVATED
    assert not user_holds_role(user=requester, role=activation.role)


def test_get_on_action_urls_changes_nothing(requester, approver):
    pending = pending_request(requester, approver)
    granted = granted_request(requester)
    client = sign_in(requester)

    for name, activation in (("cancel", pending), ("deactivate", granted), ("revoke", granted)):
        client.get(url(name, activation))
        client.head(url(name, activation))

    assert reloaded(pending).status == Status.PENDING_APPROVAL
    assert reloaded(granted).status == Status.GRANTED


def test_a_pim_administrator_revokes_with_a_reason(requester, admin):
    activation = granted_request(requester, role=role_with(name="Vault"))
    client = sign_in(admin)
    assert "revoke-form" in page(client.get(activation.get_absolute_url()))

    refused = client.post(url("revoke", activation), {"reason": " "})
    assert "A reason is required to revoke an activation." in page(refused)
    assert reloaded(activation).status == Status.GRANTED

    response = client.post(url("revoke", activation), {"reason": "Suspicious sign-in"}, follow=True)
    assert messages_of(response) == [f"Revoked: {requester} no longer holds Vault at /."]
    assert reloaded(activation).status == Status.REVOKED
    assert not user_holds_role(user=requester, role=activation.role)


@pytest.mark.parametrize("who", ["requester", "auditor"])
def test_only_a_pim_administrator_can_revoke(who, requester, auditor):
    activation = granted_request(requester)
    client = sign_in({"requester": requester, "auditor": auditor}[who])
    assert "revoke-form" not in page(client.get(activation.get_absolute_url()))

    response = client.post(url("revoke", activation), {"reason": "because"}, follow=True)

    assert messages_of(response) == ["Only a PIM Administrator can revoke activations."]
    assert reloaded(activation).status == Status.GRANTED


# --- Extension and renewal -----------------------------------------------------------------


def test_an_eligibility_ending_soon_can_be_extended_through_approval(requester, approver):
    role = role_with(approvers=[approver], name="Vault")
    eligible = eligible_for(requester, role, ends_at=NOON + timedelta(days=10))
    client = sign_in(requester)
    assert url("extend", eligible) in page(client.get(MY_ROLES))

    response = client.post(
        url("extend", eligible), {"days": "30", "justification": "Project runs on"}, follow=True
    )

    extension = ActivationRequest.objects.get(kind="extend")
    assert response.redirect_chain == [(extension.get_absolute_url(), 302)]
    assert messages_of(response) == ["Sent for approval to 1 approver."]
    assert extension.duration == timedelta(days=30) and extension.status == Status.PENDING_APPROVAL
    assert "Extension requested" in page(client.get(MY_ROLES))

    sign_in(approver).post(url("decide", extension), {"decision": "approve"})
    eligible.refresh_from_db()
    assert eligible.ends_at == NOON + timedelta(days=40)


def test_an_expired_eligibility_is_listed_and_can_be_renewed(requester, approver):
    role = role_with(approvers=[approver], name="Vault")
    ended = eligible_for(
        requester, role, starts_at=NOON - timedelta(days=90), ends_at=NOON - timedelta(days=3)
    )
    eligible_for(
        requester,
        role_with(name="Long gone"),
        starts_at=NOON - timedelta(days=90),
        ends_at=NOON - timedelta(days=40),
    )
    client = sign_in(requester)

    html = page(client.get(MY_ROLES, {"tab": "expired"}))
    assert 'id="tab-expired" aria-current="page">Expired <span class="badge">1</span>' in html
    assert url("renew", ended) in html and "Long gone" not in html

    client.post(url("renew", ended), {"days": "90", "justification": "Back on the project"})
    renewal = ActivationRequest.objects.get(kind="renew")
    assert "Renewal requested" in page(client.get(MY_ROLES, {"tab": "expired"}))

    sign_in(approver).post(url("decide", renewal), {"decision": "approve"})
    assert EligibleAssignment.objects.filter(user=requester, role=role).current(NOON).exists()
    assert url("renew", ended) not in page(client.get(MY_ROLES, {"tab": "expired"}))  # renewed


def test_a_removed_eligibility_is_not_offered_for_renewal(requester, approver):
    removed = eligible_for(
        requester,
        role_with(approvers=[approver]),
        starts_at=NOON - timedelta(days=30),
        ends_at=NOON - timedelta(days=2),
    )
    EligibleAssignment.objects.filter(pk=removed.pk).update(
        ended_at=NOON - timedelta(days=5), end_reason="removed"
    )

    assert url("renew", removed) not in page(sign_in(requester).get(MY_ROLES))


def test_group_eligibilities_get_no_extend_link_and_cannot_be_extended(requester, approver):
    group = DirectoryGroupFactory()
    group.members.add(requester)
    eligible = EligibleAssignmentFactory(
        user=None, group=group, role=role_with(approvers=[approver]), ends_at=NOON + timedelta(days=5)
    )
    client = sign_in(requester)

    html = page(client.get(MY_ROLES))
    assert url("activate", eligible) in html and url("extend", eligible) not in html
    assert client.post(url("extend", eligible), {"days": "30", "justification": "x"}).status_code == 404
    assert not ActivationRequest.objects.exists()


def test_an_eligibility_far_from_its_end_is_not_extended(requester, approver):
    eligible = eligible_for(requester, role_with(approvers=[approver]), ends_at=NOON + timedelta(days=60))
    client = sign_in(requester)
    assert url("extend", eligible) not in page(client.get(MY_ROLES))

    response = client.post(url("extend", eligible), {"days": "30", "justification": "x"})

    assert "Only an eligibility ending within the next 14 days can be extended." in page(response)
    assert not ActivationRequest.objects.exists()


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"days": "0", "justification": "x"}, "Choose between 1 and 365 days."),
        ({"days": "366", "justification": "x"}, "Choose between 1 and 365 days."),
        ({"days": "-5", "justification": "x"}, "Choose between 1 and 365 days."),
        ({"days": "9" * 5000, "justification": "x"}, "Choose between 1 and 365 days."),
        ({"days": "ten", "justification": "x"}, "Choose between 1 and 365 days."),
        ({"days": "30", "justification": ""}, "A justification is required."),
        ({"days": "30", "justification": "a\x1bb"}, "The justification contains control characters."),
    ],
)
def test_bad_extension_input_is_refused_with_a_message(data, message, requester, approver):
    eligible = eligible_for(requester, role_with(approvers=[approver]), ends_at=NOON + timedelta(days=5))

    response = sign_in(requester).post(url("extend", eligible), data)

    assert response.status_code == 200 and message in page(response)
    assert not ActivationRequest.objects.exists()


def test_someone_elses_eligibility_cannot_be_extended_or_renewed(requester, outsider, approver):
    eligible = eligible_for(outsider, role_with(approvers=[approver]), ends_at=NOON + timedelta(days=5))
    client = sign_in(requester)

    for name in ("extend", "renew"):
        assert client.get(url(name, eligible)).status_code == 404
        assert client.post(url(name, eligible), {"days": "30", "justification": "x"}).status_code == 404
    assert not ActivationRequest.objects.exists()


# --- My roles ------------------------------------------------------------------------------


def test_my_roles_offers_activate_and_shows_the_activation_with_time_left(requester):
    eligible = eligible_for(requester, role_with(name="Vault"))
    activation = granted_request(requester, role=eligible.role)

    other = eligible_for(requester, role_with(name="Ledger"))
    client = sign_in(requester)
    html = page(client.get(MY_ROLES))

    # Active at the eligibility's role and scope: "active until", not Activate.
    assert url("activate", eligible) not in html and url("activate", other) in html
    assert "Active</span> until" in html and "(in 1\xa0hour)" in html
    html = page(client.get(MY_ROLES, {"tab": "active"}))
    assert activation.get_absolute_url() in html and url("deactivate", activation) in html
    assert "(in 1\xa0hour)" in html


def test_my_roles_runs_the_same_queries_with_activations_and_expired_eligibilities(requester, clock):
    granted_request(requester)
    client = sign_in(requester)
    client.get(MY_ROLES)
    with CaptureQueriesContext(connection) as one:
        client.get(MY_ROLES)
    for n in range(10):
        granted_request(requester)
        eligible_for(
            requester, role_with(), starts_at=NOON - timedelta(days=20), ends_at=NOON - timedelta(days=n + 1)
        )
        eligible_for(requester, role_with(), ends_at=NOON + timedelta(days=n + 1))
    with CaptureQueriesContext(connection) as many:
        response = client.get(MY_ROLES)
    assert len(response.context["roles"].expired_eligible) == 10
    assert len(many) == len(one), "\n".join(q["sql"] for q in many.captured_queries)


def test_nav_shows_the_approvals_waiting(requester, approver):
    pending_request(requester, approver)

    assert '<span class="badge" aria-label="1 waiting">1</span>' in page(sign_in(approver).get(MY_ROLES))
    assert 'aria-label="1 waiting"' not in page(sign_in(requester).get(MY_ROLES))


def test_asking_twice_for_the_same_extension_says_one_is_waiting(requester, approver):
    eligible = eligible_for(requester, role_with(approvers=[approver]), ends_at=NOON + timedelta(days=5))
    client = sign_in(requester)
    data = {"days": "30", "justification": "Project runs on"}
    client.post(url("extend", eligible), data, follow=True)

    response = client.post(url("extend", eligible), data)

    assert "You already have a pending request for this eligibility." in page(response)
    assert ActivationRequest.objects.count() == 1


def test_extension_and_renewal_requests_enforce_csrf(requester, approver):
    role = role_with(approvers=[approver])
    ending = eligible_for(requester, role, ends_at=NOON + timedelta(days=5))
    ended = eligible_for(
        requester,
        role_with(approvers=[approver]),
        starts_at=NOON - timedelta(days=50),
        ends_at=NOON - timedelta(days=5),
    )
    client = csrf_client(sign_in(requester))
    data = {"days": "30", "justification": "Project runs on"}

    assert client.post(url("extend", ending), data).status_code == 403
    assert client.post(url("renew", ended), data).status_code == 403
    assert not ActivationRequest.objects.exists()


def test_the_request_page_links_auditors_to_the_evidence_view_and_not_the_requester(requester, auditor):
    activation = granted_request(requester)
    evidence = reverse("evidence:activation", args=[activation.pk])
    assert evidence in page(sign_in(auditor).get(activation.get_absolute_url()))
    assert evidence not in page(sign_in(requester).get(activation.get_absolute_url()))


def test_deactivate_asks_for_confirmation_first_and_changes_nothing_until_then(requester):
    activation = granted_request(requester, role=role_with(name="Vault"))
    client = sign_in(requester)

    # The button on My roles posts without confirming: a page says what will happen.
    response = client.post(url("deactivate", activation), {"next": MY_ROLES})

    assert response.status_code == 200
    text = response.content.decode()
    assert "Deactivate Vault?" in text and "ends it <strong>now</strong>" in text
    assert 'name="confirm" value="yes"' in text and f'href="{MY_ROLES}"' in text
    assert reloaded(activation).status == Status.GRANTED
    assert user_holds_role(user=requester, role=activation.role)
    assert client.get(url("deactivate", activation)).status_code == 200
    assert reloaded(activation).status == Status.GRANTED


def test_the_deactivate_confirmation_is_404_for_someone_else(requester, outsider):
    activation = granted_request(requester)
    response = sign_in(outsider).post(url("deactivate", activation), {"confirm": "yes"})
    assert response.status_code == 404
    assert reloaded(activation).status == Status.GRANTED
