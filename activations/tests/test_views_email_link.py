"""The link in the approval email (SPEC 2.4): opening it changes nothing, it needs the approver
signed in, it is bound to that approver, dies with the decision or the timeout, and is dropped
from the URL after landing. It never signs anyone in."""

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.test import Client
from django.urls import reverse

from activations import services
from activations.models import ActivationRequest
from activations.tokens import approval_link, approval_token, approval_token_problem
from tests.factories import PASSWORD, totp_code, totp_device

from .test_views_support import (
    NOON,
    decision_events,
    decisions,
    messages_of,
    page,
    pending_request,
    reloaded,
    sign_in,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
CLOCK_START = NOON  # the shared `clock` fixture (root conftest) stops time here
Status = ActivationRequest.Status
SCANNER = "Mozilla/5.0 (compatible; Microsoft Safe Links scanner)"


def path_of(link: str) -> str:
    """The link as the test client takes it: path and query, without the host."""
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


def assert_untouched(activation, approver):
    """Still pending, no decision written, and the approver's link still works."""
    current = reloaded(activation)
    assert current.status == Status.PENDING_APPROVAL
    assert decisions(activation) == [] and decision_events(activation) == []
    assert approval_token_problem(approval_token(current, approver), request=current, user=approver) is None


def test_opening_the_link_without_a_session_leads_to_sign_in_and_changes_nothing(requester, approver):
    activation = pending_request(requester, approver)
    link = path_of(approval_link(activation, approver))
    scanner = Client(HTTP_USER_AGENT=SCANNER)

    for response in (scanner.get(link), scanner.head(link)):
        assert response.status_code == 302
        assert response.url.startswith(reverse("accounts:login") + "?next=")
    followed = scanner.get(link, follow=True)

    assert followed.status_code == 200 and followed.templates[0].name == "accounts/login.html"
    assert "_auth_user_id" not in scanner.session  # the token signs nobody in
    assert activation.role.name not in page(followed) and "Incident 42" not in page(followed)
    assert_untouched(activation, approver)


def test_opening_the_link_with_the_approvers_session_changes_nothing(requester, approver):
    activation = pending_request(requester, approver)
    link = path_of(approval_link(activation, approver))
    client = sign_in(approver)

    for method in (client.get, client.head, client.options):
        method(link)
    client.get(link + "&decision=approve&reason=scanner", follow=True)

    assert_untouched(activation, approver)


def test_the_token_is_dropped_from_the_url_after_landing(requester, approver):
    activation = pending_request(requester, approver)
    client = sign_in(approver)

    response = client.get(path_of(approval_link(activation, approver)))

    assert response.status_code == 302
    assert response.url == reverse("activations:request_detail", args=[activation.pk])
    assert response["Referrer-Policy"] == "no-referrer"
    landed = client.get(response.url)
    assert "decision-form" in page(landed) and messages_of(landed) == []


def test_the_approver_signs_in_from_the_link_and_decides_on_the_clean_page(requester, approver, clock):
    activation = pending_request(requester, approver)
    link = path_of(approval_link(activation, approver))
    device = totp_device(approver)
    client = Client()

    to_login = client.get(link)
    to_verify = client.post(to_login.url, {"username": approver.username, "password": PASSWORD})
    assert to_verify.url.startswith(reverse("accounts:verify"))
    back = client.post(to_verify.url, {"otp_token": totp_code(device)})
    assert back.url == link  # the detour comes back to the link, token and all
    clean = client.get(back.url)
    assert clean.url == activation.get_absolute_url()
    assert_untouched(activation, approver)

    # Signing in a moment ago is the fresh MFA check: no second code needed now.
    client.post(reverse("activations:decide", args=[activation.pk]), {"decision": "approve"})
    assert reloaded(activation).status == Status.GRANTED


def test_approver_b_cannot_use_approver_as_link(requester, approver, reviewer):
    activation = pending_request(requester, approver, reviewer)
    client = sign_in(reviewer)

    response = client.get(path_of(approval_link(activation, approver)), follow=True)

    assert messages_of(response) == ["This approval link was sent to another approver."]
    assert response.redirect_chain == [(activation.get_absolute_url(), 302)]
    assert_untouched(activation, approver)


def test_someone_who_may_not_see_the_request_learns_nothing_from_a_link(requester, approver, outsider):
    activation = pending_request(requester, approver, justification="Rotate the keys")
    client = sign_in(outsider)

    response = client.get(path_of(approval_link(activation, approver)))

    assert response.status_code == 404
    assert "Rotate the keys" not in page(response) and activation.role.name not in page(response)
    assert "approver" not in page(response)
    assert_untouched(activation, approver)


def test_the_requester_following_an_approvers_link_is_told_and_cannot_decide(requester, approver):
    activation = pending_request(requester, approver)
    client = sign_in(requester)

    response = client.get(path_of(approval_link(activation, approver)), follow=True)

    assert messages_of(response) == ["This approval link was sent to another approver."]
    assert "decision-form" not in page(response)
    assert_untouched(activation, approver)


@pytest.mark.parametrize(
    "tamper",
    [
        lambda token: token[:-3] + "abc",
        lambda token: "",
        lambda token: "x" * 5000,
        lambda token: "not:a:token",
    ],
)
def test_a_tampered_link_says_so_and_changes_nothing(tamper, requester, approver):
    activation = pending_request(requester, approver)
    client = sign_in(approver)
    url = activation.get_absolute_url()

    response = client.get(url, {"t": tamper(approval_token(activation, approver))}, follow=True)

    assert messages_of(response) == ["This approval link is not valid."]
    assert response.redirect_chain == [(url, 302)]
    assert_untouched(activation, approver)


def test_a_link_for_another_request_is_not_valid_here(requester, approver, reviewer):
    activation = pending_request(requester, approver)
    other = pending_request(reviewer, approver)
    client = sign_in(approver)

    response = client.get(activation.get_absolute_url(), {"t": approval_token(other, approver)}, follow=True)

    assert messages_of(response) == ["This approval link is not valid."]


def test_the_link_dies_once_the_request_is_decided(requester, approver, reviewer):
    activation = pending_request(requester, approver, reviewer)
    link = path_of(approval_link(activation, reviewer))
    services.activation_approve(approver=approver, request=activation, mfa_verified_at=NOON)

    response = sign_in(reviewer).get(link, follow=True)

    assert messages_of(response) == ["This request has already been decided or has timed out."]
    assert response.redirect_chain == [(activation.get_absolute_url(), 302)]
    assert "decision-form" not in page(response)


def test_the_link_dies_with_the_timeout(requester, approver, clock):
    activation = pending_request(requester, approver, approval_timeout=timedelta(hours=2))
    link = path_of(approval_link(activation, approver))
    clock.shift(timedelta(hours=2))  # the deadline; the timeout job has not run

    response = sign_in(approver).get(link, follow=True)

    assert messages_of(response) == ["This request has already been decided or has timed out."]
    assert 'data-status="timed_out"' in page(response)
    assert "decision-form" not in page(response)
