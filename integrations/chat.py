"""Slack and Microsoft Teams messages about approval requests, through the chat outbox.

Rows are written by the audit event hook (integrations.outbox) in the transaction of the
request's event, with the message already built, and sent after commit:
- a request waiting for approval: a Slack post to PIM_SLACK_CHANNEL and/or a DM to each
  approver (matched by email with users.lookupByEmail), and a Teams Adaptive Card; each with
  the role, requester, justification, time left to decide and a "Review in portal" button to
  the request's page (the decision itself stays in the portal, behind fresh MFA);
- its outcome (approved, denied, canceled, timed out): every Slack post is updated in place,
  Teams gets a follow-up card, and the requester a Slack DM (also when granted without
  approval, and when the access ends within 15 minutes: chat_ending_soon)."""

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import requests
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from activations.models import ActivationRequest
from audit.models import AuditEvent
from audit.registry import AppendedEvent

from .models import ChatMessage

logger = logging.getLogger(__name__)

Kind = ChatMessage.Kind
Channel = ChatMessage.Channel
RequestStatus = ActivationRequest.Status
MAX_ATTEMPTS = 8
SEND_LEASE = timedelta(minutes=5)
WAIT_FOR_POST = timedelta(seconds=30)
ENDING_SOON = timedelta(minutes=15)
# Slack errors that a retry cannot fix.
PERMANENT_SLACK_ERRORS = {
    "users_not_found",
    "channel_not_found",
    "not_in_channel",
    "invalid_auth",
    "account_inactive",
    "is_archived",
    "message_not_found",
    "cant_update_message",
    "invalid_blocks",
    "msg_too_long",
}
OUTCOMES = {
    RequestStatus.GRANTED: "granted",
    RequestStatus.DENIED: "denied",
    RequestStatus.CANCELED: "canceled",
    RequestStatus.TIMED_OUT: "timed_out",
}
OUTCOME_TEXT = {
    "granted": "Approved",
    "denied": "Denied",
    "canceled": "Canceled by the requester",
    "timed_out": "Timed out: nobody decided in time",
}


def slack_on() -> bool:
    return bool(settings.PIM_SLACK_BOT_TOKEN)


def teams_on() -> bool:
    return bool(settings.PIM_TEAMS_WEBHOOK_URL)


# --- Rows, in the event's transaction -------------------------------------------------------------


def messages_write(events: Sequence[AppendedEvent | AuditEvent]) -> None:
    """The audit hook's chat part: rows for events about activation requests."""
    if not (slack_on() or teams_on()):
        return
    wanted = [
        e for e in events if e.target_type == "activations.activationrequest" and _interesting(e.action)
    ]
    if not wanted:
        return
    requests_by_id = {
        str(r.pk): r
        for r in ActivationRequest.objects.filter(pk__in=[e.target_id for e in wanted]).select_related(
            "role", "requester", "decided_by"
        )
    }
    now = timezone.now()
    rows: list[ChatMessage] = []
    for event in wanted:
        request = requests_by_id.get(event.target_id)
        if request is not None:
            rows += _rows_for(event, request, now)
    if rows:
        ChatMessage.objects.bulk_create(rows, ignore_conflicts=True)
        _send_on_commit()


def _interesting(action: str) -> bool:
    return action.rsplit(".", 1)[-1] in {
        "requested",
        "approved",
        "denied",
        "canceled",
        "timed_out",
        "granted",
    }


def _rows_for(
    event: AppendedEvent | AuditEvent, request: ActivationRequest, now: datetime
) -> list[ChatMessage]:
    verb = event.action.rsplit(".", 1)[-1]
    if verb == "requested" and request.status == RequestStatus.PENDING_APPROVAL:
        return _request_rows(event, request, now)
    outcome = OUTCOMES.get(RequestStatus(request.status))
    if outcome is None or verb == "requested":
        return []
    if verb == "approved" and request.status != RequestStatus.GRANTED:
        return []  # one approval of several: nothing decided yet
    rows = []
    if verb != "granted":  # decided (not granted without approval): the request's messages
        rows += _outcome_rows(event, request, outcome, now)
    if slack_on() and settings.PIM_SLACK_DM_REQUESTERS and request.requester.email:
        text = _requester_text(request, outcome)
        rows.append(
            _row(
                Channel.SLACK,
                Kind.DM,
                request,
                event,
                f"email:{request.requester.email}",
                outcome,
                _slack(text),
                now,
            )
        )
    return rows


def _request_rows(
    event: AppendedEvent | AuditEvent, request: ActivationRequest, now: datetime
) -> list[ChatMessage]:
    rows = []
    if slack_on():
        payload = slack_request_message(request, now=now)
        if settings.PIM_SLACK_CHANNEL:
            rows.append(
                _row(
                    Channel.SLACK,
                    Kind.POST,
                    request,
                    event,
                    settings.PIM_SLACK_CHANNEL,
                    "request",
                    payload,
                    now,
                )
            )
        if settings.PIM_SLACK_DM_APPROVERS:
            for email in request.approvers.filter(user__is_active=True).values_list("user__email", flat=True):
                if email:
                    rows.append(
                        _row(
                            Channel.SLACK,
                            Kind.POST,
                            request,
                            event,
                            f"email:{email}",
                            "request",
                            payload,
                            now,
                        )
                    )
    if teams_on():
        rows.append(
            _row(
                Channel.TEAMS,
                Kind.CARD,
                request,
                event,
                "",
                "request",
                teams_request_card(request, now=now),
                now,
            )
        )
    return rows


def _outcome_rows(
    event: AppendedEvent | AuditEvent, request: ActivationRequest, outcome: str, now: datetime
) -> list[ChatMessage]:
    rows = []
    if slack_on():
        posts = ChatMessage.objects.filter(
            request_id=request.pk, channel=Channel.SLACK, kind=Kind.POST, topic="request"
        )
        payload = slack_outcome_message(request, outcome)
        for destination in posts.values_list("destination", flat=True):
            rows.append(_row(Channel.SLACK, Kind.UPDATE, request, event, destination, outcome, payload, now))
    if (
        teams_on()
        and ChatMessage.objects.filter(request_id=request.pk, channel=Channel.TEAMS, topic="request").exists()
    ):
        rows.append(
            _row(
                Channel.TEAMS,
                Kind.CARD,
                request,
                event,
                "",
                outcome,
                teams_outcome_card(request, outcome),
                now,
            )
        )
    return rows


def _row(channel, kind, request, event, destination, topic, payload, now) -> ChatMessage:
    return ChatMessage(
        channel=channel,
        kind=kind,
        request_id=request.pk,
        event_seq=event.seq,
        destination=destination,
        topic=topic,
        payload=payload,
        created_at=now,
        next_attempt_at=now,
    )


def chat_ending_soon(*, now: datetime | None = None) -> int:
    """A Slack DM to requesters whose activation ends within 15 minutes (once each)."""
    now = now or timezone.now()
    if not (slack_on() and settings.PIM_SLACK_DM_REQUESTERS):
        return 0
    ending = ActivationRequest.objects.filter(
        status=RequestStatus.GRANTED, ends_at__gt=now, ends_at__lte=now + ENDING_SOON
    ).select_related("role", "requester")
    rows = []
    for request in ending:
        if request.requester.email:
            text = _requester_text(request, "ending")
            rows.append(
                ChatMessage(
                    channel=Channel.SLACK,
                    kind=Kind.DM,
                    request_id=request.pk,
                    event_seq=0,
                    destination=f"email:{request.requester.email}",
                    topic="ending",
                    payload=_slack(text),
                    created_at=now,
                    next_attempt_at=now,
                )
            )
    before = ChatMessage.objects.filter(topic="ending").count()
    ChatMessage.objects.bulk_create(rows, ignore_conflicts=True)  # once per request: the constraint
    return ChatMessage.objects.filter(topic="ending").count() - before


def _send_on_commit() -> None:
    from common.broker import task_publish

    from .tasks import chat_outbox_drain

    transaction.on_commit(lambda: task_publish(chat_outbox_drain))


# --- What the messages say --------------------------------------------------------------------------


def request_url(request: ActivationRequest) -> str:
    return f"{settings.PIM_BASE_URL}{request.get_absolute_url()}"


def _time_left(request: ActivationRequest, now: datetime) -> str:
    if request.decide_by is None:
        return "no deadline"
    left = max(request.decide_by - now, timedelta(0))
    hours, rest = divmod(int(left.total_seconds()), 3600)
    return f"{hours} h {rest // 60} min (until {request.decide_by:%Y-%m-%d %H:%M} UTC)"


def _facts(request: ActivationRequest, now: datetime) -> list[tuple[str, str]]:
    kind = {"activate": "Activation", "extend": "Extension", "renew": "Renewal"}.get(
        request.kind, request.kind
    )
    hours = request.duration.total_seconds() / 3600
    return [
        ("Requester", f"{request.requester.label} ({request.requester.username})"),
        ("Role", f"{request.role.name} at {request.scope}"),
        ("Kind", f"{kind}, {hours:g} h"),
        ("Justification", request.justification or "(none)"),
        ("Time left to decide", _time_left(request, now)),
    ]


def _escape(text: str) -> str:
    """Slack mrkdwn: &, < and > are control characters."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack(text: str, blocks: list | None = None) -> dict[str, Any]:
    return {
        "text": text,
        "blocks": blocks or [{"type": "section", "text": {"type": "mrkdwn", "text": _escape(text)}}],
    }


def slack_request_message(request: ActivationRequest, *, now: datetime) -> dict[str, Any]:
    facts = _facts(request, now)
    title = f"Approval needed: {request.requester.label} asks for {request.role.name}"
    return {
        "text": title,
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150]}},
            {
                "type": "section",
                "fields": [
                    {"type": "mrkdwn", "text": f"*{name}*\n{_escape(value)}"[:2000]} for name, value in facts
                ],
            },
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Review in portal"},
                        "url": request_url(request),
                        "style": "primary",
                        "action_id": "review_in_portal",
                    }
                ],
            },
        ],
    }


def _outcome_line(request: ActivationRequest, outcome: str) -> str:
    line = OUTCOME_TEXT[outcome]
    if outcome in ("granted", "denied") and request.decided_by is not None:
        line += f" by {request.decided_by.label}"
    if outcome == "denied" and request.decision_reason:
        line += f": {request.decision_reason}"
    return line


def slack_outcome_message(request: ActivationRequest, outcome: str) -> dict[str, Any]:
    title = f"{request.requester.label}'s request for {request.role.name}: {_outcome_line(request, outcome)}"
    return {
        "text": title,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": _escape(title)[:3000]}},
            {
                "type": "context",
                "elements": [{"type": "mrkdwn", "text": f"<{request_url(request)}|Open in portal>"}],
            },
        ],
    }


def _requester_text(request: ActivationRequest, outcome: str) -> str:
    role = f"{request.role.name} at {request.scope}"
    if outcome == "granted":
        until = f" until {request.ends_at:%Y-%m-%d %H:%M} UTC" if request.ends_at else ""
        return f"Your request for {role} is granted{until}. {request_url(request)}"
    if outcome == "ending":
        return f"Your activation of {role} ends at {request.ends_at:%H:%M} UTC. {request_url(request)}"
    return f"Your request for {role}: {_outcome_line(request, outcome)}. {request_url(request)}"


def _card(body: list, actions: list | None = None) -> dict[str, Any]:
    content: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if actions:
        content["actions"] = actions
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": content}
        ],
    }


def teams_request_card(request: ActivationRequest, *, now: datetime) -> dict[str, Any]:
    return _card(
        [
            {
                "type": "TextBlock",
                "size": "Medium",
                "weight": "Bolder",
                "wrap": True,
                "text": f"Approval needed: {request.requester.label} asks for {request.role.name}",
            },
            {
                "type": "FactSet",
                "facts": [{"title": name, "value": value} for name, value in _facts(request, now)],
            },
        ],
        [{"type": "Action.OpenUrl", "title": "Review in portal", "url": request_url(request)}],
    )


def teams_outcome_card(request: ActivationRequest, outcome: str) -> dict[str, Any]:
    return _card(
        [
            {
                "type": "TextBlock",
                "weight": "Bolder",
                "wrap": True,
                "text": f"{request.requester.label}'s request for {request.role.name}: "
                + _outcome_line(request, outcome),
            }
        ],
        [{"type": "Action.OpenUrl", "title": "Open in portal", "url": request_url(request)}],
    )


# --- Sending ------------------------------------------------------------------------------------------


class _Retry(Exception):
    """A transient failure: try again later."""


class _Wait(Exception):
    """Not yet possible (the post to update is not sent yet): try again soon, not a failure."""


def slack_client() -> WebClient:
    return WebClient(
        token=settings.PIM_SLACK_BOT_TOKEN,
        base_url=settings.PIM_SLACK_API_URL,
        timeout=settings.PIM_CHAT_TIMEOUT_SECONDS,
    )


def chat_send(*, message_id: int, now: datetime | None = None) -> bool:
    """Claim the row (a conditional update on its lease) and send it; True if this call sent it."""
    now = now or timezone.now()
    claimed = ChatMessage.objects.filter(
        pk=message_id, status=ChatMessage.Status.PENDING, next_attempt_at__lte=now
    ).update(next_attempt_at=now + SEND_LEASE, attempts=F("attempts") + 1)
    if claimed != 1:
        return False
    message = ChatMessage.objects.get(pk=message_id)
    try:
        found = _deliver(message)
    except _Wait:
        ChatMessage.objects.filter(pk=message_id).update(
            next_attempt_at=now + WAIT_FOR_POST, attempts=F("attempts") - 1
        )
        return False
    except (_Retry, requests.RequestException, OSError) as error:
        failed = message.attempts >= MAX_ATTEMPTS
        ChatMessage.objects.filter(pk=message_id).update(
            status=ChatMessage.Status.FAILED if failed else ChatMessage.Status.PENDING,
            next_attempt_at=now + timedelta(minutes=2**message.attempts),
            last_error=str(error)[:500],
        )
        logger.warning("Chat message %s failed (attempt %s): %s", message_id, message.attempts, error)
        return False
    except SlackApiError as error:
        code = str(error.response.get("error", "")) if error.response is not None else ""
        permanent = code in PERMANENT_SLACK_ERRORS or message.attempts >= MAX_ATTEMPTS
        ChatMessage.objects.filter(pk=message_id).update(
            status=ChatMessage.Status.FAILED if permanent else ChatMessage.Status.PENDING,
            next_attempt_at=now + timedelta(minutes=2**message.attempts),
            last_error=f"Slack: {code or error}"[:500],
        )
        logger.warning("Slack message %s failed: %s", message_id, code)
        return False
    ChatMessage.objects.filter(pk=message_id).update(
        status=ChatMessage.Status.SENT, sent_at=timezone.now(), **found
    )
    return True


def _deliver(message: ChatMessage) -> dict[str, str]:
    if message.channel == Channel.TEAMS:
        response = requests.post(
            settings.PIM_TEAMS_WEBHOOK_URL,
            json=message.payload,
            timeout=settings.PIM_CHAT_TIMEOUT_SECONDS,
            allow_redirects=False,
        )
        if not 200 <= response.status_code < 300:
            raise _Retry(f"Teams answered HTTP {response.status_code}")
        return {}
    client = slack_client()
    if message.kind == Kind.UPDATE:
        post = ChatMessage.objects.filter(
            request_id=message.request_id,
            channel=Channel.SLACK,
            kind=Kind.POST,
            destination=message.destination,
        ).first()
        if post is None or post.status == ChatMessage.Status.FAILED:
            return {}  # nothing was posted there: nothing to update
        if post.status != ChatMessage.Status.SENT:
            raise _Wait()
        client.chat_update(channel=post.slack_channel, ts=post.slack_ts, **message.payload)
        return {"slack_channel": post.slack_channel, "slack_ts": post.slack_ts}
    channel = message.destination
    if channel.startswith("email:"):
        found = client.users_lookupByEmail(email=channel.removeprefix("email:"))
        channel = found["user"]["id"]
    answer = client.chat_postMessage(channel=channel, **message.payload)
    return {"slack_channel": str(answer["channel"]), "slack_ts": str(answer["ts"])}


def chat_outbox_drain(*, now: datetime | None = None, limit: int = 500) -> int:
    """Send what is pending and due: posts before their updates (created first)."""
    now = now or timezone.now()
    due = ChatMessage.objects.filter(status=ChatMessage.Status.PENDING, next_attempt_at__lte=now).order_by(
        "pk"
    )
    return sum(chat_send(message_id=pk, now=now) for pk in list(due.values_list("pk", flat=True)[:limit]))
