"""Writing audit events. Every service that changes state calls audit_record in its own
transaction; nothing else writes to the log."""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from . import chain, context
from .models import AuditChainHead, AuditEvent

SYSTEM_ACTOR_LABEL = "system"
_LABEL_LIMIT = 300


@dataclass
class AuditEntry:
    """What one audit event says, before it is numbered and chained."""

    action: str
    actor: Any = None
    target: Any = None
    role: Any = None
    scope: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    outcome: str = AuditEvent.Outcome.SUCCESS


def audit_record(
    *,
    action: str,
    actor: Any = None,
    target: Any = None,
    role: Any = None,
    scope: str = "",
    details: dict[str, Any] | None = None,
    outcome: str = AuditEvent.Outcome.SUCCESS,
    at: datetime | None = None,
) -> AuditEvent:
    """Append one event to the chain (in the caller's transaction, if any)."""
    entry = AuditEntry(action, actor, target, role, scope, details or {}, outcome)
    return audit_record_many(entries=[entry], at=at)[0]


def audit_record_many(*, entries: list[AuditEntry], at: datetime | None = None) -> list[AuditEvent]:
    """Append several events under one lock of the chain head (bulk jobs use this)."""
    if not entries:
        return []
    at = at or timezone.now()
    request = context.current()
    with transaction.atomic():
        head = lock_chain_head()
        events = []
        for entry in entries:
            fields = _fields(entry, at, request)
            fields["seq"] = head.last_seq + 1
            fields["prev_hash"] = head.last_hash
            fields["hash"] = chain.event_hash(head.last_hash, fields)
            events.append(AuditEvent(**fields))
            head.last_seq, head.last_hash = fields["seq"], fields["hash"]
        AuditEvent.objects.bulk_create(events)
        AuditChainHead.objects.filter(pk=1).update(last_seq=head.last_seq, last_hash=head.last_hash)
    return events


def lock_chain_head() -> AuditChainHead:
    """Lock the chain head, re-creating it from the last event if it is missing.

    Writers hold it to the end of their transaction; the checkpoint job holds it while it signs,
    so the seq and hash it signs are the committed head."""
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is not None:
        return head
    last = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first()
    last_seq, last_hash = last or (0, chain.GENESIS_HASH)
    try:
        with transaction.atomic():
            AuditChainHead.objects.create(pk=1, last_seq=last_seq, last_hash=last_hash)
    except IntegrityError:
        pass  # another writer created it first; its row is the one to lock
    return AuditChainHead.objects.select_for_update().get(pk=1)


def _fields(entry: AuditEntry, at: datetime, request: context.RequestContext) -> dict[str, Any]:
    actor = entry.actor
    role = entry.role
    target_type, target_id, target_label = _describe_target(entry.target)
    return {
        "occurred_at": at,
        "actor_id": actor.pk if actor is not None else None,
        "actor_label": _label(actor)[:_LABEL_LIMIT] if actor is not None else SYSTEM_ACTOR_LABEL,
        "action": entry.action,
        "outcome": str(entry.outcome),
        "target_type": target_type,
        "target_id": target_id,
        "target_label": target_label[:_LABEL_LIMIT],
        "role_id": role.pk if role is not None else None,
        "role_label": role.name[:_LABEL_LIMIT] if role is not None else "",
        "scope": entry.scope,
        "details": chain.normalize_details(entry.details),
        "request_id": request.request_id,
        "ip": request.ip,
        "user_agent": request.user_agent,
    }


def _describe_target(target: object) -> tuple[str, str, str]:
    if target is None:
        return "", "", ""
    if isinstance(target, models.Model):
        meta = target._meta
        return f"{meta.app_label}.{meta.model_name}", str(target.pk), _label(target)
    return "", "", str(target)


def _label(obj: object) -> str:
    return str(getattr(obj, "label", None) or obj)
