"""Exporting audit events as CSV, JSON Lines or XLSX: streamed, as tuples, never model instances.

On PostgreSQL the CSV is made by the database itself (COPY … TO STDOUT: audit.event_export_copy)
and the other formats read one server-side cursor in large batches; elsewhere every format is
written from keyset batches of the ORM's tuples.

An export is pinned to the chain as it stands when it starts (``seq <= through_seq``): the
log is append-only, so those rows never change, and one COUNT gives the exact row count. The
``audit.exported`` event (with the filter and that count) is written, in its own transaction,
*before* the first byte goes out: a download cut short or a worker killed mid-stream still
leaves its record, which writing the event after the stream would lose, and nobody can take
data out of the log without the log saying so.

JSON Lines carries every hashed field exactly as audit.chain hashes it, with seq, prev_hash,
hash and the event's chain_version (version 3 events also carry details_text, the canonical
JSON their hash covers, and their details are read from it), then the signed checkpoints
inside the exported range: audit.offline_verify checks such a file with nothing but the
public key.
"""

import json
from collections.abc import Iterator
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import QuerySet

from common.exports import csv_chunks, xlsx_chunks

from . import chain, signing
from .checkpoints import iter_checkpoints
from .event_export_copy import csv_copy_chunks
from .models import AuditChainHead
from .services import audit_record

FORMATS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "jsonl": ("application/jsonl; charset=utf-8", "jsonl"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
}
FIELDS = ("seq", *chain.HASHED_FIELDS[1:], "prev_hash", "hash")
JSONL_FIELDS = (*FIELDS, "chain_version", "details_text")
BATCH_SIZE = 1000  # rows per keyset query: what an export holds in memory at a time
RAW_BATCH_SIZE = 5000  # rows per FETCH on PostgreSQL's server-side cursor (tuples: a few MB)


@dataclass(frozen=True)
class EventExport:
    format: str
    events: QuerySet
    through_seq: int
    rows: int


def audit_export_start(*, actor, events: QuerySet, params: dict, format: str) -> EventExport:
    """Pin, count and audit an export of ``events`` (a search's: audit.filters), whose filter
    was ``params`` as typed; stream it with export_chunks."""
    if format not in FORMATS:
        raise ValueError(f"unknown export format {format!r}")
    through_seq = AuditChainHead.objects.filter(pk=1).values_list("last_seq", flat=True).first() or 0
    events = events.filter(seq__lte=through_seq)
    rows = events.count()
    details = {"format": format, "filter": params, "rows": rows, "through_seq": through_seq}
    audit_record(action="audit.exported", actor=actor, details=details)
    return EventExport(format, events, through_seq, rows)


def export_chunks(export: EventExport) -> Iterator:
    if export.format == "jsonl":
        return jsonl_chunks(iter_rows(export.events, fields=JSONL_FIELDS), through_seq=export.through_seq)
    rows = iter_rows(export.events)
    if export.format == "csv":
        if connection.vendor == "postgresql":
            return csv_copy_chunks(export.events, FIELDS)
        return csv_chunks(FIELDS, (_cells(row) for row in rows))
    # A real date-time cell in the spreadsheet (UTC, said in the header), not text.
    header = [f"{name} (UTC)" if name == "occurred_at" else name for name in FIELDS]
    return xlsx_chunks(header, (_xlsx_cells(row) for row in rows), title="Audit log")


def iter_rows(
    events: QuerySet, *, batch_size: int = BATCH_SIZE, fields: tuple[str, ...] = FIELDS
) -> Iterator[tuple]:
    """The events in seq order as tuples of fields (FIELDS, or JSONL_FIELDS: FIELDS first),
    never model instances. On PostgreSQL from one server-side cursor in large batches
    (iter_rows_cursor); elsewhere in keyset batches (no OFFSET, no cursor held open between
    batches)."""
    if connection.vendor == "postgresql":
        yield from iter_rows_cursor(events, batch_size=max(batch_size, RAW_BATCH_SIZE), fields=fields)
        return
    yield from iter_rows_orm(events, batch_size=batch_size, fields=fields)


def iter_rows_orm(
    events: QuerySet, *, batch_size: int = BATCH_SIZE, fields: tuple[str, ...] = FIELDS
) -> Iterator[tuple]:
    """iter_rows through the ORM: a query built per batch."""
    after, full = 0, True
    while full:
        batch = list(events.filter(seq__gt=after).order_by("seq").values_list(*fields)[:batch_size])
        full = len(batch) == batch_size
        after = batch[-1][0] if batch else after
        yield from batch
        del batch  # before the next query: one batch in memory at a time, not two


def iter_rows_cursor(
    events: QuerySet, *, batch_size: int = RAW_BATCH_SIZE, fields: tuple[str, ...] = FIELDS
) -> Iterator[tuple]:
    """iter_rows from one query read through a server-side cursor, ``batch_size`` rows a
    FETCH, taken as the database sends them: the same tuples as the ORM's, with details
    decoded from the JSON text as the field would.

    The cursor lives in a transaction of its own (a savepoint inside the caller's): outside
    one, Django would declare it WITH HOLD, and PostgreSQL computes all of such a cursor's
    rows when the declaring transaction commits, before the first one is read. A stream
    dropped half-way (the generator closed) rolls it back, which only closes the cursor."""
    sql, params = events.order_by("seq").values_list(*fields).query.sql_with_params()
    loads = json.loads
    with transaction.atomic(), connection.chunked_cursor() as cursor:
        cursor.execute(sql, params)
        while batch := cursor.fetchmany(batch_size):
            for row in batch:
                details = row[_DETAILS]
                if isinstance(details, str):
                    yield (*row[:_DETAILS], loads(details), *row[_DETAILS + 1 :])
                else:
                    yield row
            del batch


def jsonl_chunks(rows: Iterator[tuple], *, through_seq: int, lines_per_chunk: int = 200) -> Iterator[str]:
    """One JSON object per line: the events, then the checkpoints that sign a seq inside the
    range exported (each anchors the chain up to it for the offline verifier)."""
    lines: list[str] = []
    first: int | None = None
    last = 0  # read once a row set first
    for row in rows:
        first = row[0] if first is None else first
        last = row[0]
        lines.append(_json_line(event_json(row)))
        if len(lines) == lines_per_chunk:
            yield "".join(lines)
            lines = []
    if first is not None:
        for checkpoint in iter_checkpoints(min_seq=first, max_seq=min(last, through_seq)):
            lines.append(_json_line(signing.checkpoint_as_json(checkpoint)))
            if len(lines) == lines_per_chunk:
                yield "".join(lines)
                lines = []
    yield "".join(lines)


def event_json(row: tuple) -> dict:
    """An event (a row of JSONL_FIELDS) as audit.chain hashes it (timestamps in its UTC
    format, ids as text). A version-3 event's details are its hashed canonical text read back
    (the same value as the stored details, and exactly the JSON its hash covers); an older
    one carries no details_text."""
    data = {"type": "event", **dict(zip(JSONL_FIELDS, row, strict=True))}
    data["occurred_at"] = chain.format_timestamp(data["occurred_at"])
    if data["role_id"] is not None:
        data["role_id"] = str(data["role_id"])
    if data["chain_version"] >= chain.CHAIN_VERSION:
        data["details"] = json.loads(data["details_text"])
    else:
        del data["details_text"]
    return data


def _json_line(data: dict) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"


_OCCURRED_AT, _DETAILS = FIELDS.index("occurred_at"), FIELDS.index("details")


def _cells(row: tuple) -> list:
    """A row for CSV and XLSX: UTC timestamps, details as compact JSON, no None."""
    cells = ["" if value is None else value for value in row]
    cells[_OCCURRED_AT] = chain.format_timestamp(row[_OCCURRED_AT])
    cells[_DETAILS] = json.dumps(row[_DETAILS], ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return [value if isinstance(value, int | str) else str(value) for value in cells]


def _xlsx_cells(row: tuple) -> list:
    cells: list = _cells(row)
    cells[_OCCURRED_AT] = row[_OCCURRED_AT]  # common.exports writes it as a UTC date-time
    return cells
