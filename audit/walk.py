"""Checking the audit hash chain, as pure functions over plain dicts (no Django, no database).

``manage.py audit_verify`` (audit.verify, over the database) and the offline verifier
(audit.offline_verify, over an export file) run exactly this code. An event dict holds ``seq``,
``prev_hash``, ``hash``, ``chain_version`` (none: 2), the fields its version hashes
(``chain.HASHED_FIELDS`` for 2, ``chain.V3_FIELDS`` for 3; ``occurred_at`` as a datetime, as
``chain.format_timestamp`` writes it or, for version 3, as microseconds) and, optionally,
``id``, ``mac`` and ``mac_key_id`` (checked by a ``MacCheck`` when the walker has one: only
where the chain key is). A version-3 event with ``details`` too must have the details its
``details_text`` says (``details_match``, when given, is that comparison made already).

``ChainWalker.walk_rows`` is the database verifier's fast path: rows of text in ROW_FIELDS
order, version-3 keyed events checked inline with nothing built per event; anything else
goes through the same ``feed`` as a dict.
"""

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import TYPE_CHECKING

from . import chain

if TYPE_CHECKING:
    from .signing import CheckpointProblem


class Fault(StrEnum):
    EDITED = "edited"
    FORGED = "forged"
    DELETED_BEFORE = "deleted before"
    REORDERED_OR_INSERTED = "reordered/inserted"
    HEAD_MISMATCH = "chain head mismatch (truncated tail)"


@dataclass(frozen=True)
class Problem:
    """The first bad event: its seq, its id (None when the event itself is missing), and why."""

    fault: Fault
    seq: int
    id: int | None
    detail: str

    def __str__(self):
        event = f"event #{self.seq}" + (f" (id {self.id})" if self.id is not None else "")
        return f"{event}: {self.fault}: {self.detail}"


@dataclass(frozen=True)
class Link:
    """What the walk remembers of the previous event (seq 0 is the genesis)."""

    seq: int = 0
    id: int | None = None
    hash: str = chain.GENESIS_HASH
    prev_hash: str = chain.GENESIS_HASH


GENESIS = Link()


@dataclass(frozen=True)
class VerifyResult:
    """The first problem, if any; count is the number of good events before it (or in all).

    last_seq and last_hash describe the last event walked (the chain head when all is well).
    checkpoints is how many signed checkpoints the chain was held against; signed how many of
    them had their signature checked (None: no public key to check with); latest the newest
    checkpoint as a dict. keyed is how many events had their MAC checked (None: no chain key
    to check with), keyed_from the first event that must carry one; referenced how many
    checkpoints from outside the database (a checkpoint file) the database was held against.
    """

    count: int
    last_seq: int
    last_hash: str
    problem: "Problem | CheckpointProblem | None" = None
    checkpoints: int = 0
    signed: int | None = None
    latest: Mapping | None = None
    keyed: int | None = None
    keyed_from: int | None = None
    referenced: int = 0

    @property
    def ok(self) -> bool:
        return self.problem is None


class MacCheck:
    """Checks each event's MAC under the chain keys (by key id).

    Events written before the keyed chain carry none and pass on their hash alone, but only
    before ``keyed_from`` (the first keyed event, as the sealed head and the signed
    checkpoints record it) and before any keyed event seen in the walk: after the switch an
    event without a MAC was not written by the portal. With ``keys`` None (no chain key
    here) only that rule is applied, and no MAC is checked.
    """

    def __init__(self, *, keys: Mapping[str, bytes] | None, keyed_from: int | None = None):
        self.keys = keys
        self.keyed_from = keyed_from
        self.keyed_seen = False
        self.checked = 0

    def problem(self, event: Mapping) -> Problem | None:
        seq, event_id, mac, key_id = event["seq"], event.get("id"), event.get("mac"), event.get("mac_key_id")
        if not mac and not key_id:
            if self.keyed_seen or (self.keyed_from is not None and seq >= self.keyed_from):
                since = self.keyed_from if self.keyed_from is not None else "an earlier event"
                detail = (
                    f"carries no MAC, though every event from #{since} on is keyed: not written by the portal"
                )
                return Problem(Fault.FORGED, seq, event_id, detail)
            return None
        self.keyed_seen = True
        if self.keys is None:
            return None
        key = self.keys.get(key_id) if key_id else None
        if key is None:
            detail = f"its MAC names chain key {key_id}, which is not one of the configured keys"
            return Problem(Fault.FORGED, seq, event_id, detail)
        if not chain.mac_matches(chain.event_mac(key, event["hash"]), mac):
            detail = "its MAC does not match its hash: re-hashed or forged without the chain key"
            return Problem(Fault.EDITED, seq, event_id, detail)
        self.checked += 1
        return None


def check_event(event: Mapping, previous: Link = GENESIS) -> Problem | None:
    """Check one event against the one before it; None when it is where it was written.

    The seq is part of the hashed content, so an event that still matches its own hash sits at
    the seq it was written with: when such an event does not link to its predecessor, the
    predecessor is the one that was replaced.
    """
    seq, event_id, expected = event["seq"], event.get("id"), previous.seq + 1
    if seq > expected:
        missing = f"#{expected}" if seq == expected + 1 else f"#{expected} to #{seq - 1}"
        return Problem(Fault.DELETED_BEFORE, seq, event_id, f"{missing} missing before this event")
    if seq < expected:
        return Problem(Fault.REORDERED_OR_INSERTED, seq, event_id, f"out of order after #{previous.seq}")
    try:
        matches_itself = chain.event_hash(event["prev_hash"], event) == event["hash"]
    except (TypeError, ValueError) as error:
        return Problem(Fault.EDITED, seq, event_id, f"its content cannot be hashed: {error}")
    if event["prev_hash"] == previous.hash:
        if not matches_itself:
            return Problem(Fault.EDITED, seq, event_id, "content does not match its hash")
        if not details_agree(event):
            detail = "its details were changed: they differ from the details text its hash covers"
            return Problem(Fault.EDITED, seq, event_id, detail)
        return None
    return _broken_link(event, previous, matches_itself)


def details_agree(event: Mapping) -> bool:
    """A version-3 event's ``details`` (what pages, searches and exports show) against the
    canonical ``details_text`` its hash covers."""
    if chain.version_of(event) < chain.CHAIN_VERSION:
        return True
    if "details_match" in event:
        return bool(event["details_match"])
    if "details" not in event:
        return True
    try:
        hashed = json.loads(event["details_text"])
    except (TypeError, ValueError):
        return False
    return same_json(hashed, event["details"])


def same_json(one: object, other: object) -> bool:
    """Equal as JSON values, the way PostgreSQL compares jsonb: numbers by value (1e20 is
    100000000000000000000, whichever way a column printed it), true and false never numbers."""
    if isinstance(one, bool) or isinstance(other, bool):
        return type(one) is type(other) and one == other
    if isinstance(one, int | float) and isinstance(other, int | float):
        return one == other
    if isinstance(one, dict) and isinstance(other, dict):
        return one.keys() == other.keys() and all(same_json(one[key], other[key]) for key in one)
    if isinstance(one, list) and isinstance(other, list):
        return len(one) == len(other) and all(map(same_json, one, other))
    return type(one) is type(other) and one == other


def _broken_link(event: Mapping, previous: Link, matches_itself: bool) -> Problem:
    seq, event_id = event["seq"], event.get("id")
    if chain.event_hash(previous.hash, event) == event["hash"]:
        return Problem(Fault.EDITED, seq, event_id, "its prev_hash was changed")
    if previous.seq and event["prev_hash"] == previous.prev_hash:
        detail = f"not in the chain: #{seq} links past it to #{previous.seq - 1}"
        return Problem(Fault.REORDERED_OR_INSERTED, previous.seq, previous.id, detail)
    if previous.seq and matches_itself:
        detail = f"replaced and re-hashed: #{seq} links to a different hash"
        return Problem(Fault.EDITED, previous.seq, previous.id, detail)
    detail = f"does not follow #{previous.seq}: moved from another position, or forged"
    return Problem(Fault.REORDERED_OR_INSERTED, seq, event_id, detail)


class ChainWalker:
    """Feeds events in seq order through check_event and keeps the first problem.

    ``watch`` names seqs whose links to remember (the chain head, signed checkpoints) for
    check_anchor; nothing else is kept, so memory does not grow with the log. ``start`` is
    where the walk begins: the genesis, or (for an export of a later range) the link that the
    first event names, see ``start_at``. ``macs`` checks the events' MACs as well.
    """

    def __init__(self, *, watch: Iterable[int] = (), start: Link = GENESIS, macs: MacCheck | None = None):
        self.count = 0
        self.start = start
        self.last = start
        self.macs = macs
        self.problem: Problem | None = None
        self.seen: dict[int, Link | None] = dict.fromkeys(watch)
        # The first keyed event walked and the last unkeyed one (a segment's report).
        self.first_keyed: int | None = None
        self.last_unkeyed: int | None = None

    def feed(self, event: Mapping) -> bool:
        """Check the next event; False once a problem was found (the walk can stop)."""
        if self.problem is not None:
            return False
        self.problem = check_event(event, self.last)
        if self.problem is None and self.macs is not None:
            self.problem = self.macs.problem(event)
        if self.problem is not None:
            return False
        self.count += 1
        self.last = Link(event["seq"], event.get("id"), event["hash"], event["prev_hash"])
        if event["seq"] in self.seen:
            self.seen[event["seq"]] = self.last
        if event.get("mac") or event.get("mac_key_id"):
            if self.first_keyed is None:
                self.first_keyed = event["seq"]
        else:
            self.last_unkeyed = event["seq"]
        return True

    def walk_rows(self, rows: Iterable[Sequence]) -> Problem | None:
        """walk() over rows in ROW_FIELDS order, with the same outcome, quicker: a keyed
        version-3 event that follows the one before, matches its hash (chain.v3_message over
        the row's texts as they are), has the details its text says and carries a good MAC
        costs one hash, one HMAC and no object. Any other row goes through feed() as a dict
        (row_event), which checks it the ordinary way and names the problem."""
        if self.problem is not None:
            return self.problem
        keys = self.macs.keys if self.macs is not None else None
        last_seq, last_hash = self.last.seq, self.last.hash
        run: list = [0, None]  # keyed version-3 events walked fast since the last settle, the last one
        try:
            return self._walk_rows(rows, run, keys, last_seq, last_hash)
        finally:  # also when reading the rows fails: the walker stands after the last good one
            self._settle(run, keys)

    def _walk_rows(self, rows: Iterable[Sequence], run: list, keys, last_seq: int, last_hash: str):
        sha256, message, mac_of = hashlib.sha256, chain.v3_message, chain.event_mac
        seen = self.seen
        for row in rows:
            seq, prev, digest, mac = row[1], row[2], row[3], row[4]
            if (
                seq == last_seq + 1
                and prev == last_hash
                and row[6] == 3
                and row[7]
                and mac
                and sha256(message(prev, row[_TEXTS:])).hexdigest() == digest
                and (keys is None or ((key := keys.get(row[5])) is not None and mac_of(key, digest) == mac))
            ):
                last_seq, last_hash = seq, digest
                run[0] += 1
                run[1] = row
                if seq in seen:
                    seen[seq] = Link(seq, row[0], digest, prev)
                continue
            self._settle(run, keys)
            if not self.feed(row_event(row)):
                return self.problem
            last_seq, last_hash = self.last.seq, self.last.hash
        return self.problem

    def _settle(self, run: list, keys: Mapping | None) -> None:
        """Bring count, last link and MAC tally up to date after a run of fast events (their
        seqs are consecutive, ending at the last one's)."""
        count, row = run
        if not count:
            return
        self.count += count
        self.last = Link(row[1], row[0], row[3], row[2])
        if self.first_keyed is None:
            self.first_keyed = row[1] - count + 1
        if self.macs is not None:
            self.macs.keyed_seen = True
            if keys is not None:
                self.macs.checked += count
        run[0], run[1] = 0, None

    def walk(self, events: Iterable[Mapping]) -> Problem | None:
        for event in events:
            if not self.feed(event):
                break
        return self.problem

    def result(self) -> VerifyResult:
        # A problem can name an event already walked (the one a later event exposed): count
        # only the events before the one named.
        good = self.count if self.problem is None else min(self.count, self.problem.seq - 1 - self.start.seq)
        return VerifyResult(good, self.last.seq, self.last.hash, self.problem)


# The columns walk_rows reads, in this order: the event's id, seq (an integer), links and key,
# its chain version, whether its details equal its details text (true before version 3), and
# then chain.V3_FIELDS as text, exactly as version 3 hashes them (occurred_at in microseconds;
# before version 3, details_text holds the details as JSON text).
ROW_FIELDS = (
    "id",
    "seq",
    "prev_hash",
    "hash",
    "mac",
    "mac_key_id",
    "chain_version",
    "details_match",
    *chain.V3_FIELDS,
)
_TEXTS = ROW_FIELDS.index("chain_version") + 2
_MICROSECOND = timedelta(microseconds=1)


def row_event(row: Sequence) -> dict:
    """A row in ROW_FIELDS order as the event dict check_event takes, in its own version."""
    event = dict(zip(ROW_FIELDS[_TEXTS:], row[_TEXTS:], strict=True))
    event.update(zip(ROW_FIELDS[:_TEXTS], row[:_TEXTS], strict=True))
    micros = int(event["occurred_at"])
    if chain.version_of(event) >= chain.CHAIN_VERSION:
        event["occurred_at"] = micros
        return event
    event["occurred_at"] = chain.EPOCH + micros * _MICROSECOND
    event["details"] = json.loads(event.pop("details_text"))
    del event["details_match"]
    return event


def start_at(first_event: Mapping) -> Link:
    """The link a range that begins with first_event hangs from: its predecessor's seq and hash
    as the event itself records them (unproven; a signed checkpoint later in the range proves
    the whole range, since no other content leads to the checkpoint's hash)."""
    seq = first_event["seq"] - 1
    return GENESIS if seq <= 0 else Link(seq, None, first_event["prev_hash"], "")


def check_anchor(walker: ChainWalker, *, seq: int, hash: str, name: str = "the chain head") -> Problem | None:
    """A known (seq, hash) pair, the chain head or a checkpoint, must be in the walked chain
    (the walker must have been told to watch seq).

    A chain that stops short of it lost its tail; a different hash there means the events
    up to it were rewritten.
    """
    if walker.last.seq < seq:
        first = walker.last.seq + 1
        missing = f"#{first}" if first == seq else f"#{first} to #{seq}"
        detail = f"{name} is at #{seq} but the last event is #{walker.last.seq}: {missing} missing"
        return Problem(Fault.HEAD_MISMATCH, first, None, detail)
    seen = walker.seen.get(seq)
    if seq and (seen is None or seen.hash != hash):
        detail = f"{name} records hash {hash} for this event"
        return Problem(Fault.HEAD_MISMATCH, seq, seen.id if seen else None, detail)
    return None
