"""Verifying the audit log in the database: walk every event in seq order, recompute, compare
(each event's MAC too, where the chain key is), then hold the chain against its sealed head
row, against every signed checkpoint, and against checkpoints kept outside the database.

The checks themselves (``check_event``, ``MacCheck``, ``ChainWalker``, ``check_anchor`` in
audit.walk, and the checkpoint checks in audit.signing) are pure functions over plain dicts, so
the offline verifier reading an export file runs exactly the code that ``manage.py
audit_verify`` runs here.
"""

import multiprocessing
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace

import psycopg
from django.db import DataError, connection, connections, transaction

from . import chain, chain_keys
from .checkpoints import iter_checkpoints
from .models import AuditChainHead, AuditEvent
from .signing import CheckpointChecker, CheckpointProblem, checkpoint_as_json
from .walk import (  # noqa: F401 - re-exported: callers and tests import them from here
    GENESIS,
    ChainWalker,
    Fault,
    Link,
    MacCheck,
    Problem,
    VerifyResult,
    check_anchor,
    check_event,
    start_at,
)

# Rows per fetch from the server-side cursor (or per keyset query elsewhere): memory stays
# flat however long the log is (2,000,000 events and more).
BATCH_SIZE = 10_000
EVENT_FIELDS = (
    "id",
    "seq",
    "prev_hash",
    "hash",
    "mac",
    "mac_key_id",
    "chain_version",
    *chain.HASHED_FIELDS,
    "details_text",
)
HEAD_ROW_FIELDS = (*chain.HEAD_FIELDS, "mac", "mac_key_id")
_CONFIGURED = object()
_UPPER = 2**62  # "no upper bound" for a seq


def iter_events(
    *, batch_size: int = BATCH_SIZE, after: int = 0, through: int | None = None
) -> Iterator[dict]:
    """Every event (with ``after < seq <= through``) as a dict of EVENT_FIELDS, in seq order,
    fetched through the ORM in keyset batches on the seq index. The walk on PostgreSQL reads
    rows instead (walk_events)."""
    events = AuditEvent.objects.all() if through is None else AuditEvent.objects.filter(seq__lte=through)
    while True:
        rows = list(events.filter(seq__gt=after).order_by("seq").values_list(*EVENT_FIELDS)[:batch_size])
        for row in rows:
            yield dict(zip(EVENT_FIELDS, row, strict=True))
        if len(rows) < batch_size:
            return
        after = rows[-1][1]


def _rows_sql() -> str:
    """The events as walk.ROW_FIELDS: every hashed value cast to text by the database (the
    timestamp as integer microseconds, exact: extract() gives a numeric), and the details'
    agreement with their canonical text compared there too (jsonb equality), so no JSON,
    datetime or UUID is built in Python for a version-3 event."""
    columns = {
        "seq": "seq::text",
        "occurred_at": "(extract(epoch FROM occurred_at) * 1000000)::int8::text",
        "actor_id": "actor_id::text",
        "role_id": "role_id::text",
        "details_text": "CASE WHEN chain_version >= 3 THEN details_text ELSE details::text END",
        "ip": "host(ip)",
    }
    texts = [columns.get(name, name) for name in chain.V3_FIELDS]
    match = "CASE WHEN chain_version >= 3 THEN details = details_text::jsonb ELSE true END"
    head = "id, seq, prev_hash, hash, mac, mac_key_id, chain_version"
    table = AuditEvent._meta.db_table
    return (
        f"SELECT {head}, {match}, {', '.join(texts)} FROM {table} "  # noqa: S608 - fixed names
        f"WHERE {table}.seq > %s AND {table}.seq <= %s ORDER BY {table}.seq"
    )


def walk_events(
    walker: ChainWalker, *, batch_size: int = BATCH_SIZE, after: int = 0, through: int | None = None
) -> Problem | None:
    """Feed the events with ``after < seq <= through`` to walker, in seq order. On PostgreSQL
    one statement through a server-side cursor (in a transaction of its own, or a savepoint),
    fetched batch_size rows at a time, straight into ChainWalker.walk_rows; elsewhere the
    ORM's dicts into walk()."""
    if connection.vendor != "postgresql":
        return walker.walk(iter_events(batch_size=batch_size, after=after, through=through))
    try:
        with transaction.atomic():
            connection.ensure_connection()
            with connection.connection.cursor(name="audit_verify_walk") as cursor:
                cursor.itersize = batch_size
                cursor.execute(_rows_sql(), [after, _UPPER if through is None else through])
                return walker.walk_rows(_fetched(cursor, batch_size))
    except (DataError, psycopg.DataError):
        # A details_text that is not JSON at all (written outside the portal) stops the
        # statement's jsonb cast: the walk goes on from the last good event through the ORM,
        # where the comparison is made in Python (walk.details_agree) and the event is named.
        after = max(after, walker.last.seq)
        return walker.walk(iter_events(batch_size=batch_size, after=after, through=through))


def _fetched(cursor, batch_size: int) -> Iterator[tuple]:
    while rows := cursor.fetchmany(batch_size):
        yield from rows


def _first_event(after: int, through: int | None) -> Mapping | None:
    events = AuditEvent.objects.filter(seq__gt=after)
    if through is not None:
        events = events.filter(seq__lte=through)
    return events.order_by("seq").values("seq", "prev_hash").first()


# --- The walk, split over several processes -----------------------------------------------

# Below this many events one process is quicker than starting others.
PARALLEL_MIN_EVENTS = 100_000


@dataclass
class _Segment:
    """What one process found walking the events with lo < seq <= hi (hi None: to the end)."""

    lo: int
    hi: int | None
    problem: bool = False
    count: int = 0
    first_seq: int | None = None
    first_prev_hash: str = ""
    last: Link = GENESIS
    seen: dict[int, Link | None] = field(default_factory=dict)
    checked: int = 0
    first_keyed: int | None = None
    last_unkeyed: int | None = None


def _walk_segment(
    lo: int, hi: int | None, watch: list[int], keys: Mapping | None, keyed_from: int | None, batch_size: int
) -> _Segment:
    """Run in a worker process: walk one segment from the link its first event names (the
    parent stitches the segments together)."""
    segment = _Segment(lo, hi)
    first = _first_event(lo, hi)
    if first is None:
        return segment
    segment.first_seq, segment.first_prev_hash = first["seq"], first["prev_hash"]
    macs = MacCheck(keys=keys, keyed_from=keyed_from)
    mine = [seq for seq in watch if seq > lo and (hi is None or seq <= hi)]
    walker = ChainWalker(watch=mine, start=start_at(first) if lo else GENESIS, macs=macs)
    walk_events(walker, batch_size=batch_size, after=lo, through=hi)
    segment.problem = walker.problem is not None
    segment.count, segment.last, segment.seen, segment.checked = (
        walker.count,
        walker.last,
        walker.seen,
        macs.checked,
    )
    segment.first_keyed, segment.last_unkeyed = walker.first_keyed, walker.last_unkeyed
    return segment


def _walk_parallel(
    *,
    head: Mapping | None,
    watch: list[int],
    ring: Mapping | None,
    macs: MacCheck,
    workers: int,
    batch_size: int,
) -> ChainWalker | None:
    """The walk split into one segment of seqs per worker process, stitched back together:
    each segment must start right after the one before and hang from its last hash, and no
    unkeyed event may follow a keyed one anywhere. None when anything is off, or when this
    process cannot start others (inside a transaction): the caller then walks the log in one
    process, which names the first problem exactly."""
    last_seq = head["last_seq"] if head else 0
    if workers < 2 or last_seq < PARALLEL_MIN_EVENTS or connection.in_atomic_block:
        return None
    bounds = [last_seq * index // workers for index in range(workers)]
    his: list[int | None] = [*bounds[1:], None]  # the last one reads past the head: see _past_head
    connections.close_all()  # a forked child must not share the parent's database connection
    context = multiprocessing.get_context("fork")
    with context.Pool(workers, initializer=_child_start) as pool:
        segments = pool.starmap(
            _walk_segment,
            [(lo, hi, watch, ring, macs.keyed_from, batch_size) for lo, hi in zip(bounds, his, strict=True)],
        )
    previous: Link = GENESIS
    for segment in segments:
        if segment.problem or segment.first_seq != segment.lo + 1 or segment.first_prev_hash != previous.hash:
            return None
        if segment.hi is not None and segment.last.seq != segment.hi:
            return None
        previous = segment.last
    keyed = [segment.first_keyed for segment in segments if segment.first_keyed is not None]
    unkeyed = [segment.last_unkeyed for segment in segments if segment.last_unkeyed is not None]
    if keyed and unkeyed and max(unkeyed) > min(keyed):
        return None
    walker = ChainWalker(watch=watch, macs=macs)
    walker.count = sum(segment.count for segment in segments)
    walker.last = previous
    for segment in segments:
        walker.seen.update({seq: link for seq, link in segment.seen.items() if link is not None})
    macs.checked = sum(segment.checked for segment in segments)
    macs.keyed_seen = bool(keyed)
    return walker


def _child_start() -> None:
    # The connections inherited through fork were closed before it: each child opens its own.
    connections.close_all()


def _workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def audit_chain_verify(
    *,
    batch_size: int = BATCH_SIZE,
    keys: Mapping | None = None,
    chain_key_ring=_CONFIGURED,
    reference: Sequence[Mapping] = (),
    workers: int | None = None,
) -> VerifyResult:
    """Walk the whole log, compare its end with the chain head row, then hold it against every
    signed checkpoint (with their signatures checked when keys, by key id, are given), against
    ``reference`` (checkpoints kept outside the database: a checkpoint file), and last check
    the head's own MAC and the newest checkpoint number it records. The first problem wins,
    and one about an event names the first bad event.

    ``chain_key_ring`` (by key id; the configured PIM_AUDIT_CHAIN_KEY unless given, None for
    none) checks every event's MAC and the head's: without it only the hashes are checked.

    The head is read before the walk (the chain must reach it) and again after it: events
    committed meanwhile are fine, since writers move the head in the same transaction, but an
    event past the head as it stands at the end was not written by audit_record. Checkpoints
    are read before the walk too: each must be reached with the hash it signed, which is what
    catches a tail deleted together with a matching edit of the head row.

    ``workers`` processes (one per core unless told; 1 for one) walk a long log in segments
    (_walk_parallel); anything found wrong is walked again in one process, so the problem
    reported is the same either way.
    """
    ring = chain_keys.keyring() if chain_key_ring is _CONFIGURED else chain_key_ring
    head = _head()
    checkpoints = list(iter_checkpoints())
    reference = [dict(checkpoint) for checkpoint in reference]
    macs = MacCheck(keys=ring, keyed_from=_keyed_from(head, checkpoints, reference))
    watch = [head["last_seq"]] if head else []
    watch += [checkpoint["seq"] for checkpoint in (*checkpoints, *reference)]
    workers = _workers() if workers is None else workers
    parallel = _walk_parallel(
        head=head, watch=watch, ring=ring, macs=macs, workers=workers, batch_size=batch_size
    )
    walker = parallel or ChainWalker(watch=watch, macs=macs)
    if parallel is None and walk_events(walker, batch_size=batch_size) is not None:
        return _result(walker, macs)
    if head is None:
        walker.problem = _missing_head(walker)
    else:
        walker.problem = check_anchor(walker, seq=head["last_seq"], hash=head["last_hash"])
    head_after = _head()
    walker.problem = walker.problem or _past_head(walker, head_after)
    if walker.problem is not None:
        return _result(walker, macs)
    result = _check_checkpoints(walker, checkpoints, keys)
    problem = result.problem or _check_reference(walker, reference, checkpoints, keys)
    if head is not None:
        problem = problem or _check_head_seal(head, ring, macs) or _check_count(head, head_after, checkpoints)
    if isinstance(problem, Problem):
        walker.problem = problem  # so the count stops before the event it names
        result = replace(result, count=walker.result().count)
    return replace(
        result,
        problem=problem,
        keyed=macs.checked if ring is not None else None,
        keyed_from=macs.keyed_from,
        referenced=len(reference),
    )


def _result(walker: ChainWalker, macs: MacCheck) -> VerifyResult:
    checked = macs.checked if macs.keys is not None else None
    return replace(walker.result(), keyed=checked, keyed_from=macs.keyed_from)


def _keyed_from(
    head: Mapping | None, checkpoints: Sequence[Mapping], reference: Sequence[Mapping]
) -> int | None:
    """The first event that must carry a MAC, by the earliest claim of the head and of any
    checkpoint. A claim can only be removed by someone without the keys (the head's MAC, the
    signatures fail then), so the earliest one is the one to hold the events to."""
    claims = [head["keyed_from"]] if head else []
    claims += [checkpoint.get("keyed_from") for checkpoint in (*checkpoints, *reference)]
    claims = [claim for claim in claims if claim is not None]
    return min(claims) if claims else None


def _check_checkpoints(walker: ChainWalker, checkpoints: list[dict], keys: Mapping | None) -> VerifyResult:
    """Authentic first (links between checkpoints, numbers, signatures), then reached by the
    chain: a forged checkpoint is named as such, not as a truncated log."""
    checker = CheckpointChecker(keys=keys, from_start=True)
    problem: CheckpointProblem | Problem | None = checker.walk(checkpoints)
    for checkpoint in checkpoints:
        if problem is not None:
            break
        problem = check_anchor(walker, seq=checkpoint["seq"], hash=checkpoint["hash"], name=_name(checkpoint))
    if isinstance(problem, Problem):
        walker.problem = problem  # so the count stops before the event it names
    return replace(
        walker.result(),
        problem=problem,
        checkpoints=len(checkpoints),
        signed=checker.signed if keys is not None else None,
        latest=checkpoints[-1] if checkpoints else None,
    )


def _check_reference(
    walker: ChainWalker, reference: Sequence[Mapping], checkpoints: Sequence[Mapping], keys: Mapping | None
) -> Problem | CheckpointProblem | None:
    """Every checkpoint kept outside the database must be authentic, still be reached by the
    chain, and still be in the database as it was written: a wiped or rolled-back database
    (even one whose own head and checkpoints agree again) no longer has them."""
    stored = {checkpoint["id"]: checkpoint for checkpoint in checkpoints}
    for checkpoint in reference:
        name = _name(checkpoint, where=" (from the checkpoint file)")
        problem: Problem | CheckpointProblem | None = CheckpointChecker(keys=keys, from_start=False).walk(
            [checkpoint]
        )
        problem = problem or check_anchor(walker, seq=checkpoint["seq"], hash=checkpoint["hash"], name=name)
        if problem is not None:
            return problem
        if stored.get(checkpoint["id"]) is None:
            detail = "is in the checkpoint file but not in the database: deleted"
            return CheckpointProblem(checkpoint["id"], checkpoint["seq"], detail)
        if _signed(stored[checkpoint["id"]]) != _signed(checkpoint):
            detail = "differs from the copy in the checkpoint file: replaced"
            return CheckpointProblem(checkpoint["id"], checkpoint["seq"], detail)
    return None


def _check_head_seal(head: Mapping, ring: Mapping | None, macs: MacCheck) -> Problem | None:
    """The head's MAC: only the portal, holding the chain key, could have moved it here. A
    head moved back over deleted events (or over a deleted checkpoint) fails it."""
    if ring is None:
        return None
    if not head["mac"] and macs.keyed_from is None and not macs.keyed_seen:
        return None  # not written since the upgrade to the keyed chain
    key = ring.get(head["mac_key_id"])
    if key is not None and chain.mac_matches(chain.head_mac(key, head), head["mac"]):
        return None
    seq = head["last_seq"]
    detail = (
        f"the chain head row (#{seq}) was changed outside the portal (its MAC does not match): "
        f"events after #{seq} may have been deleted and the head moved back"
    )
    return Problem(Fault.HEAD_MISMATCH, seq + 1, None, detail)


def _check_count(
    head: Mapping, head_after: Mapping | None, checkpoints: list[dict]
) -> CheckpointProblem | None:
    """The sealed head records the newest checkpoint's number: the database must hold it (one
    written during the walk may be newer than the head read before it, never older)."""
    newest = (checkpoints[-1].get("number") if checkpoints else None) or 0
    recorded = head["checkpoints"]
    if newest < recorded:
        missing = f"number {recorded}" if newest + 1 == recorded else f"numbers {newest + 1} to {recorded}"
        detail = (
            f"checkpoint {missing} missing: the chain head records number {recorded} as the newest, "
            f"the newest in the database is number {newest}"
        )
        return CheckpointProblem(None, None, detail)
    if head_after is not None and newest > head_after["checkpoints"]:
        detail = (
            f"is number {newest}, but the chain head records number {head_after['checkpoints']} as the newest"
        )
        return CheckpointProblem(checkpoints[-1]["id"], checkpoints[-1]["seq"], detail)
    return None


def _signed(checkpoint: Mapping) -> dict:
    return checkpoint_as_json(checkpoint)


def _name(checkpoint: Mapping, where: str = "") -> str:
    created = checkpoint["created_at"]
    created = created if isinstance(created, str) else chain.format_timestamp(created)
    return f"checkpoint {checkpoint['id']}{where} of {created}"


def _head() -> dict | None:
    row = AuditChainHead.objects.filter(pk=1).values_list(*HEAD_ROW_FIELDS).first()
    return dict(zip(HEAD_ROW_FIELDS, row, strict=True)) if row else None


def _missing_head(walker: ChainWalker) -> Problem | None:
    if walker.count == 0:
        return None  # an empty log; audit_record re-creates the head on its first write
    return Problem(Fault.HEAD_MISMATCH, walker.last.seq, walker.last.id, "the chain head row is missing")


def _past_head(walker: ChainWalker, head_after: Mapping | None) -> Problem | None:
    if head_after is None:
        return _missing_head(walker)
    if walker.last.seq <= head_after["last_seq"]:
        return None
    seq = head_after["last_seq"] + 1
    event_id = AuditEvent.objects.filter(seq=seq).values_list("id", flat=True).first()
    detail = f"after the chain head (#{head_after['last_seq']}): not written by audit_record"
    return Problem(Fault.REORDERED_OR_INSERTED, seq, event_id, detail)
