"""Canonical content and hashing of audit events (shared by writer and verifiers).

Imports nothing from Django at module level: the offline verifier (audit.offline_verify) runs
this module on a machine with no project settings and no database.
"""

import hashlib
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
