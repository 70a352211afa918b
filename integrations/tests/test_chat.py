"""Slack and Teams against local stubs on loopback that record every call (slack-sdk pointed
at the stub's base URL): the approval request is posted (channel, approvers' DMs, Teams card)
with a "Review in portal" button to the request's page; the posts are updated on the decision,
the requester gets a DM, Teams a follow-up card; nothing is sent for a rolled-back change."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.db import transaction

from activations import jobs
from activations.services import activation_cancel
from activations.tests.helpers import T0, approve, deny, eligible_for, request_activation, role_with
from integrations import chat
from integrations.models import ChatMessage

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clock")]
CLOCK_START = T0


@pytest.fixture
def role(approver):
    return role_with(approvers=[approver], name="Payroll Administrator")


def ask(requester, role, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        return request_activation(requester, eligible_for(requester, role), justification="Month-end run")


def page(request) -> str:
    return f"{django_settings.PIM_BASE_URL}/activations/requests/{request.pk}/"


def test_the_request_page_url_is_what_the_button_opens(
    requester, role, slack, django_capture_on_commit_callbacks
):
    request = ask(requester, role, django_capture_on_commit_callbacks)
    assert chat.request_url(request) == f"{django_settings.PIM_BASE_URL}{request.get_absolute_url()}"
    assert request.get_absolute_url() == f"/activations/requests/{request.pk}/"


def test_an_approval_request_is_posted_to_the_channel_with_a_review_button(
    requester, role, slack, django_capture_on_commit_callbacks
):
    request = ask(requester, role, django_capture_on_commit_callbacks)

    [post] = slack.of("chat.postMessage")
    assert post["channel"] == "C0APPROVALS"
    assert "Payroll Administrator" in post["text"] and requester.label in post["text"]
    [button] = [block for block in post["blocks"] if block["type"] == "actions"][0]["elements"]
    assert (button["text"]["text"], button["url"]) == ("Review in portal", page(request))
    facts = " ".join(field["text"] for field in post["blocks"][1]["fields"])
    assert "Month-end run" in facts and "Time left to decide" in facts and "24 h 0 min" in facts
    assert slack.calls[0][2] == "Bearer xoxb-test-token"
    row = ChatMessage.objects.get(kind="post")
    assert (row.status, row.slack_channel, row.slack_ts) == ("sent", "C0APPROVALS", "1700.0")


def test_approvers_get_a_dm_matched_by_their_email(
    requester, approver, role, slack, settings, django_capture_on_commit_callbacks
):
    settings.PIM_SLACK_CHANNEL = ""
    settings.PIM_SLACK_DM_APPROVERS = True
    slack.users = {approver.email: "U0BOB"}

    ask(requester, role, django_capture_on_commit_callbacks)

    assert slack.of("users.lookupByEmail") == [{"email": approver.email}]
    [post] = slack.of("chat.postMessage")
    assert post["channel"] == "U0BOB"
    assert ChatMessage.objects.get().slack_channel == "DU0BOB"


def test_the_post_is_updated_when_the_request_is_approved_and_the_requester_gets_a_dm(
    requester, approver, role, slack, settings, django_capture_on_commit_callbacks
):
    settings.PIM_SLACK_DM_REQUESTERS = True
    slack.users = {requester.email: "U0RITA"}
    request = ask(requester, role, django_capture_on_commit_callbacks)

    with django_capture_on_commit_callbacks(execute=True):
        approve(approver, request)

    [update] = slack.of("chat.update")
    assert (update["channel"], update["ts"]) == ("C0APPROVALS", "1700.0")
    assert f"Approved by {approver.label}" in update["text"]
    assert not any(block["type"] == "actions" for block in update["blocks"])  # the button is gone
    dm = slack.of("chat.postMessage")[-1]
    assert dm["channel"] == "U0RITA" and "is granted until" in dm["text"] and page(request) in dm["text"]


@pytest.mark.parametrize("outcome", ["denied", "canceled", "timed_out"])
def test_the_post_is_updated_when_the_request_is_denied_canceled_or_times_out(
    requester, approver, role, slack, clock, outcome, django_capture_on_commit_callbacks
):
    request = ask(requester, role, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        if outcome == "denied":
            deny(approver, request, reason="Not during the freeze")
        elif outcome == "canceled":
            activation_cancel(actor=requester, request=request)
        else:
            clock.shift(timedelta(hours=25))
            jobs.activation_timeout_due()

    [update] = slack.of("chat.update")
    expected = {
        "denied": f"Denied by {approver.label}: Not during the freeze",
        "canceled": "Canceled by the requester",
        "timed_out": "Timed out",
    }[outcome]
    assert expected in update["text"] and update["ts"] == "1700.0"


def test_an_update_waits_for_its_post_when_slack_was_down(
    requester, approver, role, slack, django_capture_on_commit_callbacks
):
    slack.fail_with = "ratelimited"
    request = ask(requester, role, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        approve(approver, request)
    assert slack.of("chat.update") == []
    slack.fail_with = ""

    # The drain sends the post first, then the update of that very post.
    assert chat.chat_outbox_drain(now=T0 + timedelta(hours=1)) >= 1
    chat.chat_outbox_drain(now=T0 + timedelta(hours=2))
    [update] = slack.of("chat.update")
    post = ChatMessage.objects.get(kind="post")
    assert (post.status, update["channel"], update["ts"]) == ("sent", post.slack_channel, post.slack_ts)
    assert ChatMessage.objects.filter(status="pending").count() == 0


def test_nothing_is_written_or_sent_when_the_request_rolls_back(
    requester, role, slack, teams, django_capture_on_commit_callbacks
):
    eligible = eligible_for(requester, role)
    with pytest.raises(RuntimeError), django_capture_on_commit_callbacks(execute=True):
        with transaction.atomic():
            request_activation(requester, eligible)
            raise RuntimeError("something after the request fails")

    assert ChatMessage.objects.count() == 0
    assert chat.chat_outbox_drain() == 0
    assert slack.calls == [] and teams.cards == []


def test_each_message_is_sent_once_even_if_drained_twice(
    requester, role, slack, django_capture_on_commit_callbacks
):
    ask(requester, role, django_capture_on_commit_callbacks)
    assert chat.chat_outbox_drain() == 0
    message = ChatMessage.objects.get()
    assert chat.chat_send(message_id=message.pk) is False
    assert len(slack.of("chat.postMessage")) == 1


def test_a_slack_user_not_found_is_given_up_at_once(
    requester, approver, role, slack, settings, django_capture_on_commit_callbacks
):
    settings.PIM_SLACK_CHANNEL = ""
    settings.PIM_SLACK_DM_APPROVERS = True
    ask(requester, role, django_capture_on_commit_callbacks)
    row = ChatMessage.objects.get()
    assert (row.status, row.last_error) == ("failed", "Slack: users_not_found")


def test_teams_gets_an_adaptive_card_and_a_follow_up_with_the_outcome(
    requester, approver, role, teams, django_capture_on_commit_callbacks
):
    request = ask(requester, role, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        deny(approver, request, reason="No ticket")

    first, follow_up = teams.cards
    card = first["attachments"][0]
    assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["content"]["type"] == "AdaptiveCard"
    [action] = card["content"]["actions"]
    assert (action["type"], action["title"], action["url"]) == (
        "Action.OpenUrl",
        "Review in portal",
        page(request),
    )
    facts = {fact["title"]: fact["value"] for fact in card["content"]["body"][1]["facts"]}
    assert facts["Justification"] == "Month-end run" and "Payroll Administrator" in facts["Role"]
    text = follow_up["attachments"][0]["content"]["body"][0]["text"]
    assert f"Denied by {approver.label}: No ticket" in text


def test_a_requester_is_told_on_slack_when_the_activation_ends_soon(requester, slack, settings, clock):
    settings.PIM_SLACK_DM_REQUESTERS = True
    slack.users = {requester.email: "U0RITA"}
    role = role_with(name="Chat Ending Test Role")
    request_activation(requester, eligible_for(requester, role))  # granted at once, for an hour
    chat.chat_outbox_drain()
    clock.shift(timedelta(minutes=50))

    assert chat.chat_ending_soon() == 1
    assert chat.chat_ending_soon() == 0
    chat.chat_outbox_drain()
    texts = [post["text"] for post in slack.of("chat.postMessage")]
    assert any("ends at 11:00 UTC" in text for text in texts)
    assert any("is granted until" in text for text in texts)
