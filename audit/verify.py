"""Verifying the audit log in the database: walk every event in seq order, recompute, compare,
then hold the chain against its head row and against every signed checkpoint.

The checks themselves (``check_event``, ``ChainWalker``, ``check_anchor`` in audit.walk, and
the checkpoint checks in audit.signing) are pure functions over plain dicts, so the offline
verifier reading an export file runs exactly the code that ``manage.py audit_verify`` runs here.
"""

from collections.abc import Iterator, Mapping
from dataclasses import replace

from . import chain
from .checkpoints import iter_checkpoints
from .models import AuditChainHead, AuditEvent
from .signing import CheckpointChecker, CheckpointProblem
from .walk import (  # noqa: F401 - re-exported: callers and tests import them from here
    GENESIS,
    ChainWalker,
    Fault,
    Link,
    Problem,
    VerifyResult,
    check_anchor,
    check_event,
)

# Rows per keyset query: memory stays flat however long the log is (2,000,000 events and more).
BATCH_SIZE = 5000
EVENT_FIELDS = ("id", "seq", "prev_hash", "hash", *chain.HASHED_FIELDS)


def iter_events(*, batch_size: int = BATCH_SIZE, after: int = 0) -> Iterator[dict]:
    """Every event as a dict, in seq order, fetched in keyset batches on the seq index."""
    while True:
        rows = list(
            AuditEvent.objects.filter(seq__gt=after).order_by("seq").values_list(*EVENT_FIELDS)[:batch_size]
        )
        for row in rows:
            yield dict(zip(EVENT_FIELDS, row, strict=True))
        if len(rows) < batch_size:
            return
        after = rows[-1][1]


def audit_chain_verify(*, batch_size: int = BATCH_SIZE, keys: Mapping | None = None) -> VerifyResult:
    """Walk the whole log, compare its end with the chain head row, then hold it against every
    signed checkpoint (with their signatures checked when keys, by key id, are given).

    The head is read before the walk (the chain must reach it) and again after it: events
    committed meanwhile are fine, since writers move the head in the same transaction, but an
    event past the head as it stands at the end was not written by audit_record. Checkpoints
    are read before the walk too: each must be reached with the hash it signed, which is what
    catches a tail deleted together with a matching edit of the head row.
    """
    head = _head()
    checkpoints = list(iter_checkpoints())
    watch = ([head[0]] if head else []) + [checkpoint["seq"] for checkpoint in checkpoints]
    walker = ChainWalker(watch=watch)
    if walker.walk(iter_events(batch_size=batch_size)) is not None:
        return walker.result()
    if head is None:
        walker.problem = _missing_head(walker)
    else:
        walker.problem = check_anchor(walker, seq=head[0], hash=head[1])
    walker.problem = walker.problem or _past_head(walker, _head())
    if walker.problem is not None:
        return walker.result()
    return _check_checkpoints(walker, checkpoints, keys)


def _check_checkpoints(walker: ChainWalker, checkpoints: list[dict], keys: Mapping | None) -> VerifyResult:
    """Authentic first (links between checkpoints, signatures), then reached by the chain: a
    forged checkpoint is named as such, not as a truncated log."""
    checker = CheckpointChecker(keys=keys, from_start=True)
    problem: CheckpointProblem | Problem | None = checker.walk(checkpoints)
    for checkpoint in checkpoints:
        if problem is not None:
            break
        name = f"checkpoint {checkpoint['id']} of {chain.format_timestamp(checkpoint['created_at'])}"
        problem = check_anchor(walker, seq=checkpoint["seq"], hash=checkpoint["hash"], name=name)
    if isinstance(problem, Problem):
        walker.problem = problem  # so the count stops before the event it names
    return replace(
        walker.result(),
        problem=problem,
        checkpoints=len(checkpoints),
        signed=checker.signed if keys is not None else None,
        latest=checkpoints[-1] if checkpoints else None,
    )


def _head() -> tuple[int, str] | None:
    return AuditChainHead.objects.filter(pk=1).values_list("last_seq", "last_hash").first()


def _missing_head(walker: ChainWalker) -> Problem | None:
    if walker.count == 0:
        return None  # an empty log; audit_record re-creates the head on its first write
    return Problem(Fault.HEAD_MISMATCH, walker.last.seq, walker.last.id, "the chain head row is missing")


def _past_head(walker: ChainWalker, head_after: tuple[int, str] | None) -> Problem | None:
    if head_after is None:
        return _missing_head(walker)
    if walker.last.seq <= head_after[0]:
        return None
    seq = head_after[0] + 1
    event_id = AuditEvent.objects.filter(seq=seq).values_list("id", flat=True).first()
    detail = f"after the chain head (#{head_after[0]}): not written by audit_record"
    return Problem(Fault.REORDERED_OR_INSERTED, seq, event_id, detail)
