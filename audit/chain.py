"""Canonical content, hashing and keying of audit events (shared by writer and verifiers).

Each event's ``hash`` is a plain SHA-256 over the previous hash and the event's canonical
content: anyone can recompute it, so an export is proven by a signed checkpoint and the
public key alone (audit.offline_verify). Since the keyed chain, each event also carries a
``mac``: an HMAC of its hash under the chain key (PIM_AUDIT_CHAIN_KEY), a secret that lives in
the portal's environment and never in the database. Someone with database rights only can
compute a valid hash for a forged event but not its MAC. The chain head row is sealed the
same way (``head_mac``), so moving it back over a deleted tail shows too.

Imports nothing from Django at module level: the offline verifier (audit.offline_verify) runs
this module on a machine with no project settings and no database.
"""

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

GENESIS_HASH = "0" * 64

# The fields an event's hash covers, in this order (with the previous hash first).
HASHED_FIELDS = (
    "seq",
    "occurred_at",
    "actor_id",
    "actor_label",
    "action",
    "outcome",
    "target_type",
    "target_id",
    "target_label",
    "role_id",
    "role_label",
    "scope",
    "details",
    "request_id",
    "ip",
    "user_agent",
)


def normalize_details(details: Mapping[str, Any] | None) -> dict[str, Any]:
    """Details as they will read back from a JSON column (dates to strings and so on)."""
    from django.core.serializers.json import DjangoJSONEncoder  # writer side only (see above)

    normalized: dict[str, Any] = json.loads(json.dumps(details or {}, cls=DjangoJSONEncoder))
    return normalized


def format_timestamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def canonical_content(fields: Mapping[str, Any]) -> str:
    content: dict[str, object] = {}
    for name in HASHED_FIELDS:
        value = fields.get(name)
        if isinstance(value, datetime):
            value = format_timestamp(value)
        elif value is not None and name in ("actor_id", "role_id", "ip"):
            value = str(value)
        content[name] = value
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def event_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    digest = hashlib.sha256()
    digest.update(prev_hash.encode("ascii"))
    digest.update(b"\n")
    digest.update(canonical_content(fields).encode("utf-8"))
    return digest.hexdigest()


# --- The keyed chain ------------------------------------------------------------------------

EVENT_MAC_PREFIX = b"PIM Portal audit event v2\n"
HEAD_MAC_PREFIX = b"PIM Portal audit chain head v2\n"
KEY_ID_MESSAGE = b"PIM Portal audit chain key id"
# What the head's MAC covers: where the chain ends, from which event on every event is keyed,
# and how many checkpoints were written (so a deleted newest checkpoint shows).
HEAD_FIELDS = ("last_seq", "last_hash", "keyed_from", "checkpoints")


def chain_key_id(key: bytes) -> str:
    """A short name for a chain key that says nothing about the key itself."""
    return hmac.new(key, KEY_ID_MESSAGE, hashlib.sha256).hexdigest()[:16]


def event_mac(key: bytes, event_hash_value: str) -> str:
    """The MAC of one event: its hash already covers its content, its seq and (through
    prev_hash) everything before it."""
    return hmac.new(key, EVENT_MAC_PREFIX + event_hash_value.encode("utf-8"), hashlib.sha256).hexdigest()


def head_mac(key: bytes, head) -> str:
    content = {name: head.get(name) for name in HEAD_FIELDS}
    body = json.dumps(content, sort_keys=True, separators=(",", ":")).encode("ascii")
    return hmac.new(key, HEAD_MAC_PREFIX + body, hashlib.sha256).hexdigest()


def mac_matches(expected: str, given: str | None) -> bool:
    return hmac.compare_digest(expected.encode("utf-8"), (given or "").encode("utf-8"))
