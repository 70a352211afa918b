"""Writing audit events. Every service that changes state calls audit_record in its own
transaction; nothing else writes to the log."""

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from django.db import IntegrityError, models, transaction
from django.utils import timezone

from common.db import bulk_insert_values

from . import chain, chain_keys, context, registry
from .models import AuditChainHead, AuditCheckpoint, AuditEvent

SYSTEM_ACTOR_LABEL = "system"
_IP_FIELD = AuditEvent._meta.get_field("ip")
_LABEL_LIMIT = 300
_Event = TypeVar("_Event")


class ChainHeadMissingError(RuntimeError):
    """The chain head row is gone while the log is not empty: nothing is written until an
    operator has run audit_verify and restored it (audit_chain_head_restore). Re-creating it
    silently from the remaining events would hide a deleted tail."""


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
    key = chain_keys.current()  # no key, no event: everything after the switch is keyed
    at = at or timezone.now()
    request = context.current()
    return _append([_fields(entry, at, request) for entry in entries], key=key, insert=_bulk_create)


def audit_record_prepared(*, events: list[dict[str, Any]], at: datetime) -> None:
    """Append events whose content the caller has already written out, for set-based jobs
    that read their rows as tuples (no model instances to describe): per event the keys
    action, target_type, target_id, target_label, role_id, role_label, scope and details (JSON
    values only: what chain.normalize_details would give), optionally outcome. The actor is
    the system; the time, the request's context, the numbering, hashing and keying are those
    of audit_record_many, in one pass under one lock of the chain head."""
    if not events:
        return
    key = chain_keys.current()
    request = context.current()
    common = {
        "occurred_at": at,
        "actor_id": None,
        "actor_label": SYSTEM_ACTOR_LABEL,
        "outcome": str(AuditEvent.Outcome.SUCCESS),
        "request_id": request.request_id,
        "ip": request.ip,
        "user_agent": request.user_agent,
    }
    prepared = []
    for event in events:
        fields = {**common, **event}
        fields["target_label"] = fields["target_label"][:_LABEL_LIMIT]
        fields["role_label"] = fields["role_label"][:_LABEL_LIMIT]
        prepared.append(fields)
    # COPY of the field values (bulk_insert_values): a sweep appends thousands at once, and
    # neither a model instance per event nor an INSERT of thousands of wide rows is needed.
    # The hooks see each event's number, action and target (registry.AppendedEvent).
    _append(prepared, key=key, insert=_copy_insert)


def _bulk_create(all_fields: list[dict[str, Any]]) -> list[AuditEvent]:
    events = [AuditEvent(**fields) for fields in all_fields]
    AuditEvent.objects.bulk_create(events, batch_size=2000)
    return events


def _copy_insert(all_fields: list[dict[str, Any]]) -> list[registry.AppendedEvent]:
    bulk_insert_values(AuditEvent, all_fields, json_text={"details": "details_text"})
    return [
        registry.AppendedEvent(fields["seq"], fields["action"], fields["target_type"], fields["target_id"])
        for fields in all_fields
    ]


def _append(
    all_fields: list[dict[str, Any]],
    *,
    key: chain_keys.ChainKey,
    insert: Callable[[list[dict[str, Any]]], list[_Event]],
) -> list[_Event]:
    """Chain the events in one pass under the locked head, insert them, seal the head. What
    an event's hash covers but its place in the chain is put together before the lock
    (chain_prepare): concurrent writers wait for each other only to number, hash and insert."""
    tails = [chain_prepare(fields, key=key) for fields in all_fields]
    with transaction.atomic():
        head = lock_chain_head()
        for fields, tail in zip(all_fields, tails, strict=True):
            chain_link(head, fields, tail, key=key)
        events = insert(all_fields)
        chain_head_save(head, key=key)
        for hook in registry.EVENT_HOOKS:
            hook(events)
    return events


def chain_prepare(fields: dict[str, Any], *, key: chain_keys.ChainKey) -> str:
    """Complete one event's fields with what does not depend on its place in the chain (the
    values as stored, chain version 3 with the details' canonical text, computed here once,
    the key's id) and return its chain.v3_tail, for chain_link."""
    _as_stored(fields)
    fields["chain_version"] = chain.CHAIN_VERSION
    fields["details_text"] = chain.canonical_details(fields["details"])
    fields["mac_key_id"] = key.id
    return chain.v3_tail(fields)


def chain_link(
    head: AuditChainHead, fields: dict[str, Any], tail: str, *, key: chain_keys.ChainKey
) -> dict[str, Any]:
    """Number, hash and key one prepared event (chain_prepare gave its tail) as the next in
    the chain, and move the locked head (in memory; chain_head_save stores it) onto it. The
    first keyed event is recorded in the head as ``keyed_from``: from there on every event
    must carry a MAC."""
    if head.keyed_from is None:
        head.keyed_from = head.last_seq + 1
    fields["seq"] = head.last_seq + 1
    fields["prev_hash"] = head.last_hash
    fields["hash"] = chain.v3_hash(head.last_hash, fields["seq"], tail)
    fields["mac"] = chain.event_mac(key.secret, fields["hash"])
    head.last_seq, head.last_hash = fields["seq"], fields["hash"]
    return fields


def _as_stored(fields: dict[str, Any]) -> None:
    """The role id and the IP address as the database gives them back (a UUID in its
    canonical text, the address as GenericIPAddressField stores it), so the hash covers what a
    verifier reads."""
    role_id = fields.get("role_id")
    if role_id is not None and not isinstance(role_id, uuid.UUID):
        fields["role_id"] = uuid.UUID(str(role_id))
    fields["ip"] = _IP_FIELD.get_prep_value(fields.get("ip")) or None  # "" is stored as NULL


def chain_head_save(head: AuditChainHead, *, key: chain_keys.ChainKey) -> None:
    """Seal the locked head with the chain key and store it."""
    head.mac, head.mac_key_id = chain.head_mac(key.secret, head_dict(head)), key.id
    AuditChainHead.objects.filter(pk=1).update(**head_dict(head), mac=head.mac, mac_key_id=head.mac_key_id)


def head_dict(head: AuditChainHead) -> dict[str, Any]:
    return {name: getattr(head, name) for name in chain.HEAD_FIELDS}


def lock_chain_head() -> AuditChainHead:
    """Lock the chain head; create it at the genesis when the log is empty (a flushed test
    database). A head missing beside events or checkpoints raises ChainHeadMissingError.

    Writers hold it to the end of their transaction; the checkpoint job holds it while it signs,
    so the seq and hash it signs are the committed head."""
    head = AuditChainHead.objects.select_for_update().filter(pk=1).first()
    if head is not None:
        return head
    if AuditEvent.objects.exists() or AuditCheckpoint.objects.exists():
        raise ChainHeadMissingError(
            "The audit chain head row is missing: no audit event is written until it is back. "
            "Run manage.py audit_verify to see what else was removed."
        )
    try:
        with transaction.atomic():
            AuditChainHead.objects.create(pk=1, last_seq=0, last_hash=chain.GENESIS_HASH)
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


def audit_chain_head_restore() -> AuditEvent:
    """Re-create a missing chain head from the log as it stands, sealed with the chain key,
    and record that it was (``audit.chain_head_restored``, with where the log ended): an
    operator's decision, after audit_verify showed what else was removed."""
    key = chain_keys.current()
    with transaction.atomic():
        if AuditChainHead.objects.filter(pk=1).exists():
            raise ValueError("The audit chain head row is there: nothing to restore.")
        last_seq, last_hash = AuditEvent.objects.order_by("-seq").values_list("seq", "hash").first() or (
            0,
            chain.GENESIS_HASH,
        )
        head = AuditChainHead(
            pk=1,
            last_seq=last_seq,
            last_hash=last_hash,
            keyed_from=AuditEvent.objects.exclude(mac="")
            .order_by("seq")
            .values_list("seq", flat=True)
            .first(),
            checkpoints=AuditCheckpoint.objects.order_by("-id").values_list("number", flat=True).first() or 0,
        )
        head.mac, head.mac_key_id = chain.head_mac(key.secret, head_dict(head)), key.id
        head.save(force_insert=True)
        details = {"last_seq": last_seq, "last_hash": last_hash, "checkpoints": head.checkpoints}
        return audit_record(action="audit.chain_head_restored", details=details)
