"""Canonical content, hashing and keying of audit events (shared by writer and verifiers).

Each event's ``hash`` is a plain SHA-256 over the previous hash and the event's canonical
content: anyone can recompute it, so an export is proven by a signed checkpoint and the
public key alone (audit.offline_verify). Since the keyed chain, each event also carries a
``mac``: an HMAC of its hash under the chain key (PIM_AUDIT_CHAIN_KEY), a secret that lives in
the portal's environment and never in the database. Someone with database rights only can
compute a valid hash for a forged event but not its MAC. The chain head row is sealed the
same way (``head_mac``), so moving it back over a deleted tail shows too.

Chain versions. An event's ``chain_version`` says how its content is encoded for the hash;
every version stays verifiable, so history is never rewritten:

- **2** (every event written before version 3, keyed or not): the SHA-256 of the previous
  hash, a newline and a canonical JSON object of HASHED_FIELDS (sorted keys, the timestamp as
  text, ids as text, ``details`` as the decoded JSON value). Checking it means decoding the
  stored ``details`` (jsonb) into Python, formatting a datetime, and serialising the whole
  event to JSON again: a plain loop doing that runs at ~10k events/s, the ceiling that kept
  audit_verify far from 100k/s.
- **3** (everything written now): the SHA-256 of ``V3_PREFIX``, the previous hash, a newline,
  then each of V3_FIELDS in order as one token: ``-`` for NULL, else ``<n>:<text>`` where
  ``<text>`` is the value as text and ``<n>`` its length in Unicode code points (the whole
  message is then UTF-8). A token can only be read one way (its length says where it ends,
  and a length starts with a digit, never ``-``), so two different events never share a
  message; the prefix starts with a letter where a version-2 message starts with a hex digit,
  so no version-3 message equals a version-2 one either, and the version itself is covered
  (changing ``chain_version`` breaks the hash). The values as text: integers in decimal,
  ``occurred_at`` as integer **microseconds since the Unix epoch** (UTC), the role id as the
  lower-case hyphenated UUID, the IP address as the database prints it, and ``details`` as
  ``details_text``: its canonical JSON (sorted keys, no spaces, non-ASCII kept, no NaN),
  computed **once when the event is written** and stored in its own column beside the
  ``details`` jsonb that queries and pages use.

  Why a stored text and not the jsonb: jsonb's own text output is not a stable encoding
  (PostgreSQL normalises numbers, 1e20 prints as 100000000000000000000, and the key order and
  spacing are its own), a writer cannot predict it before the row exists, SQLite stores
  something else again, and decoding plus re-serialising it is what made version 2 slow. The
  verifier reads every value as text straight from the database (casts in SQL: no JSON, no
  datetime, no UUID object in Python) and checks, in the same SQL, that ``details`` still
  equals ``details_text`` read as JSON (jsonb equality): editing either one shows.

Imports nothing from Django at module level: the offline verifier (audit.offline_verify) runs
this module on a machine with no project settings and no database.
"""

import hashlib
import hmac
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

GENESIS_HASH = "0" * 64
# The version new events are written with, and the one events without a version have.
CHAIN_VERSION = 3
LEGACY_VERSION = 2

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


# Version 3: the same fields with details as its canonical text (see the module docstring).
V3_FIELDS = tuple("details_text" if name == "details" else name for name in HASHED_FIELDS)
V3_PREFIX = "PIM Portal audit event v3\n"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


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


def canonical_details(details: Any) -> str:
    """The text a version-3 event's hash covers for its details (JSON values only: what
    normalize_details gives). ValueError for NaN or infinity, which no JSON column holds."""
    return json.dumps(details, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def timestamp_micros(value: datetime | str | int) -> int:
    """Microseconds since the Unix epoch, from a datetime, from format_timestamp's text (an
    export) or as given."""
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return (value - EPOCH) // _MICROSECOND


def v3_texts(fields: Mapping[str, Any]) -> list[str | None]:
    """An event's V3_FIELDS as the text version 3 hashes (None stays None)."""
    texts: list[str | None] = []
    for name in V3_FIELDS:
        value = fields.get(name)
        if name == "occurred_at" and value is not None:
            value = timestamp_micros(value)
        texts.append(None if value is None else str(value))
    return texts


def v3_message(prev_hash: str, texts: Sequence[str | None]) -> bytes:
    """What a version-3 event's hash is the SHA-256 of: the one definition the writer, the
    database verifier (over the columns as text) and the offline verifier all call."""
    return (V3_PREFIX + prev_hash + "\n" + _v3_tokens(texts)).encode("utf-8")


def _v3_tokens(texts: Sequence[str | None]) -> str:
    return "".join([f"{len(text)}:{text}" if text is not None else "-" for text in texts])


def v3_tail(fields: Mapping[str, Any]) -> str:
    """The part of an event's version-3 message after its seq (V3_FIELDS starts with it):
    everything but its place in the chain, which a writer computes before it locks the
    chain head. v3_hash(prev_hash, seq, tail) == event_hash(prev_hash, fields)."""
    return _v3_tokens(v3_texts(fields)[1:])


def v3_hash(prev_hash: str, seq: int, tail: str) -> str:
    """The version-3 hash of the event at seq after prev_hash, given its v3_tail: the same
    bytes as v3_message, put together from the part that depends on the chain and the rest."""
    return hashlib.sha256(v3_message(prev_hash, [str(seq)]) + tail.encode("utf-8")).hexdigest()


def version_of(fields: Mapping[str, Any]) -> int:
    return fields.get("chain_version") or LEGACY_VERSION


def event_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """The hash of an event with these fields after prev_hash, in the event's chain version
    (``chain_version``; none: version 2)."""
    version = version_of(fields)
    if version == 3:
        return hashlib.sha256(v3_message(prev_hash, v3_texts(fields))).hexdigest()
    if version != LEGACY_VERSION:
        raise ValueError(f"unknown audit chain version {version!r}")
    return legacy_event_hash(prev_hash, fields)


def legacy_event_hash(prev_hash: str, fields: Mapping[str, Any]) -> str:
    """Version 2: SHA-256 over the previous hash and canonical_content (JSON)."""
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
    return hmac.digest(key, EVENT_MAC_PREFIX + event_hash_value.encode("utf-8"), "sha256").hex()


def head_mac(key: bytes, head) -> str:
    content = {name: head.get(name) for name in HEAD_FIELDS}
    body = json.dumps(content, sort_keys=True, separators=(",", ":")).encode("ascii")
    return hmac.new(key, HEAD_MAC_PREFIX + body, hashlib.sha256).hexdigest()


def mac_matches(expected: str, given: str | None) -> bool:
    return hmac.compare_digest(expected.encode("utf-8"), (given or "").encode("utf-8"))
