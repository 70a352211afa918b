"""Signed webhooks for a SIEM or automation: subscriptions (PIM Administrators, fresh MFA),
deliveries as CloudEvents 1.0 with the audit event's seq and hash, signed with HMAC-SHA256 over
timestamp + body, sent in seq order per subscription with exponential back-off, paused (with an
alert) after PIM_WEBHOOK_PAUSE_AFTER_FAILURES consecutive failures, replayable from a seq."""

import hashlib
import hmac
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.validators import URLValidator
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from accounts.models import User
from alerts.rules import AlertKind, Finding, Severity
from audit.event_types import event_type_matches, event_type_problem
from audit.models import AuditEvent
from audit.refusals import audit_permission_denied
from audit.registry import AppendedEvent
from audit.services import audit_record
from common.step_up import verification_is_fresh
from common.text import clean_text

from .models import WebhookDelivery, WebhookSubscription

logger = logging.getLogger(__name__)

MANAGE_PERMISSION = "integrations.manage_webhooks"
MIN_SECRET_BYTES = 32
MAX_SECRET_BYTES = 256
SIGNATURE_HEADER = "X-PIM-Signature"  # t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
TIMESTAMP_HEADER = "X-PIM-Timestamp"
SEND_LEASE = timedelta(minutes=5)
BACKOFF_CAP = timedelta(hours=1)
BATCH = 200
Status = WebhookSubscription.Status


# --- Managing subscriptions -------------------------------------------------------------------


@dataclass
class SubscriptionInput:
    name: str
    url: str
    event_types: list[str]
    secret: str | None  # None on a change: keep the current one


def _require_manager(actor: User, attempted: str, mfa_verified_at: datetime | None, now: datetime) -> None:
    if not actor.has_perm(MANAGE_PERMISSION):
        raise audit_permission_denied(
            actor=actor,
            attempted=attempted,
            permission=MANAGE_PERMISSION,
            message="Only PIM Administrators (with the role active) manage webhooks.",
        )
    if not verification_is_fresh(mfa_verified_at, now):
        raise PermissionDenied("Confirm with a fresh code from your authenticator app first.")


def subscription_clean(data: SubscriptionInput) -> SubscriptionInput:
    """Every problem at once, by field; nothing is saved when there is any."""
    errors: dict[str, list[str]] = {}
    name = ""
    try:
        name = clean_text(data.name, field="name", required=True)[:200]
    except ValidationError as error:
        errors["name"] = error.messages
    url = (data.url or "").strip()
    problem = url_problem(url)
    if problem:
        errors["url"] = [problem]
    types = sorted({str(item).strip() for item in data.event_types or [] if str(item).strip()})
    if not types:
        errors["event_types"] = ["Choose at least one event type (or * for all)."]
    else:
        problems = [p for p in (event_type_problem(item) for item in types) if p]
        if problems:
            errors["event_types"] = problems
    if data.secret is not None:
        size = len(data.secret.encode())
        if size < MIN_SECRET_BYTES:
            errors["secret"] = [f"The secret must be at least {MIN_SECRET_BYTES} bytes long (it is {size})."]
        elif size > MAX_SECRET_BYTES:
            errors["secret"] = [f"The secret may be at most {MAX_SECRET_BYTES} bytes long."]
    if errors:
        raise ValidationError(errors)
    return SubscriptionInput(name=name, url=url, event_types=types, secret=data.secret)


def url_problem(url: str) -> str | None:
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        return "Enter a valid http(s) URL, such as https://siem.example.org/pim."
    if len(url) > 1000:
        return "The URL may be at most 1000 characters long."
    parts = urlsplit(url)
    if parts.username or parts.password:
        return "Put no user name or password in the URL: the signature authenticates the portal."
    if parts.scheme != "https" and not settings.PIM_WEBHOOK_ALLOW_HTTP:
        return "The URL must use https (plain http is allowed only in development)."
    return None


def webhook_subscription_create(
    *, actor: User, data: SubscriptionInput, mfa_verified_at: datetime | None, now: datetime | None = None
) -> WebhookSubscription:
    now = now or timezone.now()
    _require_manager(actor, "webhook_subscription_create", mfa_verified_at, now)
    if data.secret is None:
        raise ValidationError({"secret": ["A secret is required."]})
    data = subscription_clean(data)
    with transaction.atomic():
        subscription = WebhookSubscription.objects.create(
            name=data.name,
            url=data.url,
            event_types=data.event_types,
            secret=data.secret or "",
            created_by=actor,
            created_at=now,
        )
        audit_record(
            action="webhook.subscription_created",
            actor=actor,
            target=subscription,
            details={"url": data.url, "event_types": data.event_types},
            at=now,
        )
    return subscription


def webhook_subscription_update(
    *,
    actor: User,
    subscription: WebhookSubscription,
    data: SubscriptionInput,
    mfa_verified_at: datetime | None,
    now: datetime | None = None,
) -> WebhookSubscription:
    now = now or timezone.now()
    _require_manager(actor, "webhook_subscription_update", mfa_verified_at, now)
    data = subscription_clean(data)
    with transaction.atomic():
        subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
        before = {"name": subscription.name, "url": subscription.url, "event_types": subscription.event_types}
        subscription.name, subscription.url, subscription.event_types = data.name, data.url, data.event_types
        if data.secret is not None:
            subscription.secret = data.secret
        subscription.save()
        after = {"name": subscription.name, "url": subscription.url, "event_types": subscription.event_types}
        changes = {k: {"before": before[k], "after": after[k]} for k in after if before[k] != after[k]}
        if data.secret is not None:
            changes["secret"] = {"before": "(hidden)", "after": "(changed)"}
        audit_record(
            action="webhook.subscription_changed",
            actor=actor,
            target=subscription,
            details={"changes": changes},
            at=now,
        )
    return subscription


def webhook_subscription_delete(
    *,
    actor: User,
    subscription: WebhookSubscription,
    mfa_verified_at: datetime | None,
    now: datetime | None = None,
) -> None:
    now = now or timezone.now()
    _require_manager(actor, "webhook_subscription_delete", mfa_verified_at, now)
    with transaction.atomic():
        subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
        audit_record(
            action="webhook.subscription_deleted",
            actor=actor,
            target=subscription,
            details={"url": subscription.url},
            at=now,
        )
        subscription.delete()


def webhook_subscription_resume(
    *,
    actor: User,
    subscription: WebhookSubscription,
    mfa_verified_at: datetime | None,
    now: datetime | None = None,
) -> WebhookSubscription:
    """Start delivering again (what waited is sent, in seq order); the alert resolves."""
    now = now or timezone.now()
    _require_manager(actor, "webhook_subscription_resume", mfa_verified_at, now)
    with transaction.atomic():
        subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
        if subscription.status != Status.PAUSED:
            raise ValidationError("The subscription is not paused.")
        subscription.status, subscription.paused_at, subscription.paused_reason = Status.ACTIVE, None, ""
        subscription.consecutive_failures, subscription.next_attempt_at = 0, None
        subscription.save()
        audit_record(action="webhook.subscription_resumed", actor=actor, target=subscription, at=now)
        _alert_evaluate_on_commit()
        _deliver_on_commit([subscription.pk])
    return subscription


def webhook_subscription_pause(
    *,
    actor: User,
    subscription: WebhookSubscription,
    mfa_verified_at: datetime | None,
    now: datetime | None = None,
) -> WebhookSubscription:
    now = now or timezone.now()
    _require_manager(actor, "webhook_subscription_pause", mfa_verified_at, now)
    return _pause(subscription.pk, actor=actor, reason="paused by an administrator", now=now)


def webhook_replay(
    *,
    actor: User,
    subscription: WebhookSubscription,
    from_seq: int,
    mfa_verified_at: datetime | None,
    now: datetime | None = None,
) -> int:
    """Queue again every matching event from seq `from_seq` on (those already waiting are not
    doubled); they are sent in seq order. Returns how many were queued."""
    now = now or timezone.now()
    _require_manager(actor, "webhook_replay", mfa_verified_at, now)
    if from_seq < 1:
        raise ValidationError({"from_seq": ["Give a sequence number of 1 or more."]})
    with transaction.atomic():
        subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription.pk)
        waiting = set(
            subscription.deliveries.filter(status=WebhookDelivery.Status.PENDING).values_list(
                "seq", flat=True
            )
        )
        events = AuditEvent.objects.filter(seq__gte=from_seq).order_by("seq").only("pk", "seq", "action")
        rows = [
            WebhookDelivery(
                subscription=subscription, seq=event.seq, action=event.action, replay=True, created_at=now
            )
            for event in events.iterator(chunk_size=2000)
            if event.seq not in waiting and event_type_matches(subscription.event_types, event.action)
        ]
        WebhookDelivery.objects.bulk_create(rows, batch_size=2000)
        audit_record(
            action="webhook.replayed",
            actor=actor,
            target=subscription,
            details={"from_seq": from_seq, "queued": len(rows)},
            at=now,
        )
        _deliver_on_commit([subscription.pk])
    return len(rows)


# --- Outbox rows, in the audit event's transaction ----------------------------------------------


def deliveries_write(events: Sequence[AppendedEvent | AuditEvent]) -> None:
    """audit.registry's event hook: one pending delivery per (active or paused) subscription
    that wants the event. A paused subscription keeps collecting them, for when it resumes."""
    subscriptions = list(WebhookSubscription.objects.values_list("pk", "event_types"))
    if not subscriptions:
        return
    now = timezone.now()
    rows = [
        WebhookDelivery(subscription_id=pk, seq=event.seq, action=event.action, created_at=now)
        for event in events
        for pk, types in subscriptions
        if event_type_matches(types, event.action)
    ]
    if not rows:
        return
    WebhookDelivery.objects.bulk_create(rows)
    _deliver_on_commit(sorted({row.subscription_id for row in rows}))


def _deliver_on_commit(subscription_ids: list) -> None:
    from common.broker import task_publish

    from .tasks import webhook_deliver

    transaction.on_commit(lambda: [task_publish(webhook_deliver, str(pk)) for pk in subscription_ids])


# --- Sending --------------------------------------------------------------------------------------


def cloud_event(event: AuditEvent) -> dict[str, Any]:
    """The audit event as a CloudEvents 1.0 structured-mode JSON object."""
    occurred = event.occurred_at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return {
        "specversion": "1.0",
        "id": f"pim-audit-{event.seq}",
        "source": f"{settings.PIM_BASE_URL}/audit/",
        "type": f"org.pim-portal.audit.{event.action}",
        "subject": f"{event.target_type}/{event.target_id}" if event.target_type else event.target_label,
        "time": occurred,
        "datacontenttype": "application/json",
        "auditseq": event.seq,
        "audithash": event.hash,
        "data": {
            "seq": event.seq,
            "hash": event.hash,
            "prev_hash": event.prev_hash,
            "action": event.action,
            "outcome": event.outcome,
            "occurred_at": occurred,
            "actor": event.actor_label,
            "target": {"type": event.target_type, "id": event.target_id, "label": event.target_label},
            "role": {"id": str(event.role_id) if event.role_id else None, "label": event.role_label},
            "scope": event.scope,
            "details": event.details,
            "request_id": event.request_id,
        },
    }


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """HMAC-SHA256 over "<timestamp>.<body>", hex."""
    message = str(timestamp).encode() + b"." + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def webhook_deliver(*, subscription_id: Any, now: datetime | None = None) -> int:
    """Claim the subscription (one sender at a time: seq order) and send what waits, oldest
    first, until one fails. Returns how many were delivered."""
    now = now or timezone.now()
    claimed = (
        WebhookSubscription.objects.filter(pk=subscription_id, status=Status.ACTIVE)
        .filter(Q(lease_until__isnull=True) | Q(lease_until__lte=now))
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .update(lease_until=now + SEND_LEASE)
    )
    if claimed != 1:
        return 0
    delivered = 0
    try:
        subscription = WebhookSubscription.objects.get(pk=subscription_id)
        while True:
            due = list(
                subscription.deliveries.filter(status=WebhookDelivery.Status.PENDING).order_by("seq", "pk")[
                    :BATCH
                ]
            )
            events = AuditEvent.objects.in_bulk([delivery.seq for delivery in due], field_name="seq")
            for delivery in due:
                if not _send(subscription, delivery, events[delivery.seq], now):
                    return delivered
                delivered += 1
            if len(due) < BATCH:
                return delivered
    finally:
        WebhookSubscription.objects.filter(pk=subscription_id, lease_until=now + SEND_LEASE).update(
            lease_until=None
        )


def _send(
    subscription: WebhookSubscription, delivery: WebhookDelivery, event: AuditEvent, now: datetime
) -> bool:
    body = json.dumps(cloud_event(event), separators=(",", ":"), sort_keys=True).encode()
    timestamp = int(timezone.now().timestamp())
    headers = {
        "Content-Type": "application/cloudevents+json; charset=utf-8",
        "User-Agent": "PIM-Portal-Webhook/1",
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: f"t={timestamp},v1={signature(subscription.secret, timestamp, body)}",
    }
    status_code: int | None = None
    error = ""
    try:
        response = requests.post(
            subscription.url,
            data=body,
            headers=headers,
            timeout=settings.PIM_WEBHOOK_TIMEOUT_SECONDS,
            allow_redirects=False,
        )
        status_code = response.status_code
        if not 200 <= status_code < 300:
            error = f"HTTP {status_code}"
    except requests.RequestException as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    attempted = timezone.now()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        attempts=F("attempts") + 1,
        last_attempt_at=attempted,
        last_status_code=status_code,
        last_error=error[:500],
        **({} if error else {"status": WebhookDelivery.Status.DELIVERED, "delivered_at": attempted}),
    )
    if not error:
        if subscription.consecutive_failures:
            WebhookSubscription.objects.filter(pk=subscription.pk).update(
                consecutive_failures=0, next_attempt_at=None
            )
            subscription.consecutive_failures = 0
        return True
    _failed(subscription, error, now)
    return False


def _failed(subscription: WebhookSubscription, error: str, now: datetime) -> None:
    failures = subscription.consecutive_failures + 1
    backoff = min(timedelta(seconds=30 * 2 ** min(failures - 1, 16)), BACKOFF_CAP)
    WebhookSubscription.objects.filter(pk=subscription.pk).update(
        consecutive_failures=failures, next_attempt_at=now + backoff
    )
    subscription.consecutive_failures = failures
    logger.warning("Webhook %s failed (%s in a row): %s", subscription.pk, failures, error)
    if failures >= settings.PIM_WEBHOOK_PAUSE_AFTER_FAILURES:
        _pause(
            subscription.pk,
            actor=None,
            reason=f"{failures} deliveries failed in a row; last: {error}",
            now=now,
        )


def _pause(subscription_id: Any, *, actor: User | None, reason: str, now: datetime) -> WebhookSubscription:
    with transaction.atomic():
        subscription = WebhookSubscription.objects.select_for_update().get(pk=subscription_id)
        if subscription.status == Status.PAUSED:
            return subscription
        subscription.status, subscription.paused_at, subscription.paused_reason = (
            Status.PAUSED,
            now,
            reason[:500],
        )
        subscription.save(update_fields=["status", "paused_at", "paused_reason"])
        audit_record(
            action="webhook.subscription_paused",
            actor=actor,
            target=subscription,
            details={"reason": reason[:500], "consecutive_failures": subscription.consecutive_failures},
            at=now,
        )
        _alert_evaluate_on_commit()
    return subscription


def _alert_evaluate_on_commit() -> None:
    from alerts.services import alerts_evaluate

    transaction.on_commit(lambda: alerts_evaluate(kinds=["webhook_subscription_paused"]))


def webhook_outbox_drain(*, now: datetime | None = None) -> int:
    """Every active subscription with something due (after a broker outage, or its back-off)."""
    now = now or timezone.now()
    due = (
        WebhookSubscription.objects.filter(
            status=Status.ACTIVE, deliveries__status=WebhookDelivery.Status.PENDING
        )
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .values_list("pk", flat=True)
        .distinct()
    )
    return sum(webhook_deliver(subscription_id=pk, now=now) for pk in list(due))


# --- The alert --------------------------------------------------------------------------------------


def paused_subscriptions(*, now: datetime) -> list[Finding]:
    paused = WebhookSubscription.objects.filter(status=Status.PAUSED).order_by("name")
    items = [{"type": "webhook", "id": str(s.pk), "label": f"{s.name} ({s.url})"} for s in paused]
    if not items:
        return []
    return [
        Finding(key="", items=items, reason="These webhook subscriptions stopped receiving audit events.")
    ]


PAUSED_ALERT = AlertKind(
    "Webhook subscriptions are paused",
    Severity.HIGH,
    "A receiver of the portal's audit events (a SIEM) failed PIM_WEBHOOK_PAUSE_AFTER_FAILURES times "
    "in a row: its subscription was paused and events wait for it.",
    "Fix the receiver, then resume the subscription under Webhooks: every waiting event is sent, in order.",
    paused_subscriptions,
)
