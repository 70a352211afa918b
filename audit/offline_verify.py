"""Verify a JSON Lines export of the audit log with no database and no project settings.

    python -m audit.offline_verify audit-export.jsonl --public-key KEY
    python manage.py audit_verify --export audit-export.jsonl --public-key KEY   (the same)

KEY is the audit public key (base64 of its 32 bytes, or PEM) or a file holding it; repeat
--public-key for keys used before a rotation. Needs only Python and ``cryptography``.

The export carries events (``"type": "event"``, in seq order, each with seq, prev_hash, hash,
chain_version and every field its version hashes: version 3 adds details_text, which must
say the same as details) and then the signed checkpoints inside its range (``"type":
"checkpoint"``). The verifier walks the events with the same checks audit_verify runs on the
database, checks each checkpoint's signature, and holds the chain against it: every event up
to a good checkpoint is then exactly what was logged, since no other content leads to the
hash the key holder signed. Events after the last checkpoint are chained but not yet signed
(the report says how many). An export filtered by anything but time has gaps and cannot be
verified: export the whole log or a time range for that. The events' MACs (audit.chain) do not
travel in an export: they prove events to whoever holds the chain key, in the database, while
an export is proven by the signed checkpoints alone.
"""

import argparse
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import chain, signing
from .walk import ChainWalker, Fault, check_anchor, start_at

EVENT_KEYS = ("seq", "prev_hash", "hash", *chain.HASHED_FIELDS)
GAP_HINT = (
    "an export filtered by anything but time leaves gaps in the chain and cannot be verified; "
    "export the whole log, or a time range only"
)


# JSON types of the fields the checks compute with (the other hashed fields are hashed as
# they are, whatever their type).
_TYPES: dict[str, dict[str, type | tuple[type, ...]]] = {
    "event": {"seq": int, "prev_hash": str, "hash": str, "occurred_at": str, "chain_version": int},
    "checkpoint": {
        "number": (int, type(None)),
        "seq": int,
        "hash": str,
        "created_at": str,
        "previous_id": (int, type(None)),
        "previous_digest": str,
        "key_id": str,
        "keyed_from": (int, type(None)),
        "signature": str,
    },
}
_NEEDED = {
    "event": EVENT_KEYS,
    "checkpoint": tuple(name for name in signing.CHECKPOINT_FIELDS if name not in signing.OPTIONAL_FIELDS),
}


class ExportError(ValueError):
    """The file is not an audit export (bad JSON, a missing field, lines out of place)."""


@dataclass(frozen=True)
class OfflineResult:
    """What an export proved. ``problem`` is None when the chain is whole and signed."""

    events: int = 0
    first_seq: int = 0
    last_seq: int = 0
    checkpoints: int = 0
    signed_seq: int = 0
    latest: Mapping | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None

    def __str__(self):
        if self.problem is not None:
            return f"FAILED: {self.problem}"
        latest = self.latest or {}
        text = (
            f"OK: {self.events} events (#{self.first_seq} to #{self.last_seq}) in an unbroken chain; "
            f"checkpoint {latest.get('id')} of {latest.get('created_at')} signed by key "
            f"{latest.get('key_id')} covers them up to #{self.signed_seq}"
        )
        if self.last_seq > self.signed_seq:
            after = self.last_seq - self.signed_seq
            text += f"; the {after} events after it are chained but not yet signed by a checkpoint"
        return text


def verify_export(path: str | Path, keys: Mapping) -> OfflineResult:
    """Verify the export at path with trusted public keys (by key id, see signing.keyring).

    Reads the file twice (checkpoints come last, and the walk must know their seqs up front),
    one line at a time: memory stays flat however large the export is.
    """
    try:
        checkpoints = [item for _, item in _items(path) if item["type"] == "checkpoint"]
        walker, first = _walk(path, [checkpoint["seq"] for checkpoint in checkpoints])
    except ExportError as error:
        return OfflineResult(problem=str(error))
    except OSError as error:
        return OfflineResult(problem=f"cannot read the export: {error.strerror or error}")
    counts: dict[str, Any] = {"events": walker.count, "first_seq": first, "last_seq": walker.last.seq}
    if walker.problem is not None:
        detail = f"event #{walker.problem.seq}: {walker.problem.fault}: {walker.problem.detail}"
        if walker.problem.fault == Fault.DELETED_BEFORE:
            detail += f" ({GAP_HINT})"
        return OfflineResult(**counts, problem=detail)
    problem = _checkpoint_problem(walker, checkpoints, keys)
    if problem is not None:
        return OfflineResult(**counts, checkpoints=len(checkpoints), problem=problem)
    return OfflineResult(
        **counts, checkpoints=len(checkpoints), signed_seq=checkpoints[-1]["seq"], latest=checkpoints[-1]
    )


def _checkpoint_problem(walker: ChainWalker, checkpoints: list[dict], keys: Mapping) -> str | None:
    if not checkpoints:
        return (
            "the export holds no signed checkpoint, so nothing proves its events authentic: "
            "export a range that a checkpoint covers (they are written every 15 minutes)"
        )
    checker = signing.CheckpointChecker(keys=keys, from_start=False)
    if checker.walk(checkpoints) is not None:
        return str(checker.problem)
    for checkpoint in checkpoints:
        if checkpoint["seq"] < walker.start.seq + 1:
            return (
                f"checkpoint {checkpoint['id']} signs #{checkpoint['seq']}, before the first event exported"
            )
        name = f"checkpoint {checkpoint['id']} of {checkpoint['created_at']}"
        problem = check_anchor(walker, seq=checkpoint["seq"], hash=checkpoint["hash"], name=name)
        if problem is not None:
            return f"event #{problem.seq}: {problem.detail}"
    return None


def _walk(path, watch: list[int]) -> tuple[ChainWalker, int]:
    walker: ChainWalker | None = None
    first = 0
    for _, item in _items(path):
        if item["type"] == "checkpoint":
            continue
        if walker is None:
            walker, first = ChainWalker(watch=watch, start=start_at(item)), item["seq"]
        elif walker.problem is not None:
            break
        walker.feed(item)
    if walker is None:
        raise ExportError("the export holds no events")
    return walker, first


def _items(path) -> Iterator[tuple[int, dict]]:
    """Each line as a dict with a known type and the fields that type needs."""
    seen_checkpoint = False
    with open(path, encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            if not line.strip():
                continue
            item = _parse(number, line)
            if item["type"] == "event" and seen_checkpoint:
                raise ExportError(f"line {number}: an event after the checkpoints")
            seen_checkpoint = seen_checkpoint or item["type"] == "checkpoint"
            yield number, item


def _parse(number: int, line: str) -> dict:
    try:
        item = json.loads(line)
    except ValueError:
        raise ExportError(f"line {number}: not JSON") from None
    if not isinstance(item, dict):
        raise ExportError(f"line {number}: not a JSON object")
    kind = item.setdefault("type", "event")
    needed = _NEEDED.get(kind)
    if needed is None:
        raise ExportError(f"line {number}: unknown type {kind!r}")
    missing = [name for name in needed if name not in item]
    if missing:
        raise ExportError(f"line {number}: {kind} without {', '.join(missing)}")
    if kind == "checkpoint":
        for name in signing.OPTIONAL_FIELDS:  # exports written before numbering lack them
            item.setdefault(name, None)
    if kind == "event":
        item.setdefault("chain_version", chain.LEGACY_VERSION)  # exports written before version 3
        if item["chain_version"] == chain.CHAIN_VERSION and "details_text" not in item:
            raise ExportError(f"line {number}: version {chain.CHAIN_VERSION} event without details_text")
    wrong = [name for name, kinds in _TYPES[kind].items() if not isinstance(item[name], kinds)]
    integers = ("seq", "number", "keyed_from", "chain_version")
    wrong += [name for name in integers if isinstance(item.get(name), bool)]
    if kind == "event" and "details_text" in item and not isinstance(item["details_text"], str):
        wrong.append("details_text")
    if wrong or not _is_ascii(item, kind):
        raise ExportError(f"line {number}: {kind} with a malformed {', '.join(wrong) or 'hash'}")
    return item


def _is_ascii(item: dict, kind: str) -> bool:
    names = ("prev_hash", "hash") if kind == "event" else ("hash", "signature", "key_id")
    return all(item[name].isascii() for name in names)


def read_checkpoints(path: str | Path) -> list[dict]:
    """The checkpoints in a JSON Lines file (a checkpoint file, or an export: its events are
    skipped), for audit_verify to hold the database against. Raises ExportError or OSError."""
    return [item for _, item in _items(path) if item["type"] == "checkpoint"]


def read_keys(values: Sequence[str]) -> dict:
    """Public keys from command-line values: key text, or the path of a file holding it."""
    texts = [Path(value).read_text(encoding="ascii") if _is_file(value) else value for value in values]
    return signing.keyring(key for text in texts for key in signing.load_public_keys(text))


def _is_file(value: str) -> bool:
    try:
        return "\n" not in value and Path(value).is_file()
    except (OSError, ValueError):  # key text that is no possible file name
        return False


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m audit.offline_verify", description=__doc__.split("\n")[0]
    )
    parser.add_argument("export", help="a JSON Lines export of the audit log")
    parser.add_argument(
        "--public-key", action="append", required=True, help="the audit public key, or a file holding it"
    )
    args = parser.parse_args(argv)
    try:
        keys = read_keys(args.public_key)
    except (OSError, ValueError) as error:
        print(f"FAILED: cannot read the public key: {error}", file=sys.stderr)
        return 2
    result = verify_export(args.export, keys)
    print(result)
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
