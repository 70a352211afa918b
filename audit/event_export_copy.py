"""The CSV export on PostgreSQL: ``COPY (SELECT …) TO STDOUT`` streamed as the database writes it.

Formatting a million rows in Python (csv.writer over tuples) runs some 70 times slower than the
database can send them, so on PostgreSQL the cells are made in the query and the CSV by COPY;
Python only passes the bytes on. The file is the one audit.event_exports makes through Python
(on SQLite, and for the other formats): the same header, columns, filter and seq order, and
every cell the same text, made so:

- a text cell a spreadsheet could run as a formula (common.exports.FORMULA_TRIGGERS) gets a
  leading apostrophe, as common.exports.safe_cell does, in every text column and in details;
- an empty text is sent as NULL, which COPY writes as nothing at all (an empty *text* it would
  quote: ``""``), as csv.writer writes it;
- occurred_at in audit.chain's UTC format (to the microsecond, with a Z);
- each row ends in CRLF, as csv.writer ends it: PostgreSQL sends each row as one message
  ending in its own LF (a LF inside a quoted cell is never the last byte), which is replaced.
  "CopyData messages (always one per row)" is in the protocol's documentation (COPY
  Operations); changing it would break the wire protocol.

One difference is left: details are PostgreSQL's text of the jsonb value (``{"a": 1, "b": 2}``,
keys ordered shortest first) rather than Python's compact, sorted JSON. Both read back to the
same value; rewriting every row's JSON in the query would cost more than the rest of the row.

The filter's values reach COPY as literals that psycopg quotes itself (COPY takes no bind
parameters): never text formatted into the statement.
"""

from collections.abc import Iterator

from django.db import connection, transaction
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL

from common.exports import CHUNK_BYTES, FORMULA_TRIGGERS, csv_chunks

from .models import AuditEvent

# PostgreSQL text cannot hold NUL, so ascii() is 0 only for the empty text.
_TRIGGER_CODES = tuple(ord(trigger) for trigger in FORMULA_TRIGGERS if trigger != "\0")
_TIMESTAMP = "to_char({} AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"  # chain.format_timestamp


def _safe_text(column: str) -> str:
    """The cell of a text column: formula-safe, and NULL when empty (see the module). A simple
    CASE on the first character's code reads the text once for the usual cell (measured: some
    30% cheaper than ``ascii(…) IN (…)`` followed by NULLIF)."""
    escaped = "".join(f" WHEN {code} THEN '''' || {column}" for code in _TRIGGER_CODES)
    return f"CASE ascii({column}) WHEN 0 THEN NULL{escaped} ELSE {column} END"


def _safe_json(column: str) -> str:
    """details as text, formula-safe: only a scalar's text can start with a trigger (an object
    starts with {, an array with [), and asking jsonb_typeof is cheaper than reading the text."""
    text = f"{column}::text"
    return f"CASE WHEN jsonb_typeof({column}) IN ('number', 'string') THEN {_safe_text(text)} ELSE {text} END"


def _cell_sql(field: str) -> str:
    """The SQL of one cell: made of the model's own table and column names and the constants
    above, never of anything a request sent."""
    columns = {each.attname: str(each.column) for each in AuditEvent._meta.concrete_fields}
    table = connection.ops.quote_name(AuditEvent._meta.db_table)
    column = f"{table}.{connection.ops.quote_name(columns[field])}"
    if field == "occurred_at":
        return _TIMESTAMP.format(column)
    if field == "details":
        return _safe_json(column)
    if field in ("seq", "actor_id", "role_id", "ip"):
        # Numbers, a UUID and an address: their text never starts with a trigger and is
        # written as Python writes them (inet's output is the host, as the ORM reads it).
        return column
    return _safe_text(column)


def copy_statement(events: QuerySet, fields: tuple[str, ...]) -> tuple[str, tuple]:
    """COPY of ``events`` (filtered, pinned) in seq order, one CSV column per field, and the
    filter's parameters. The query is the ORM's (its WHERE is the search's) with the cells
    above as its select list."""
    cells = {
        f"cell_{index}": RawSQL(_cell_sql(field), ())  # noqa: S611 - no input in it (_cell_sql)
        for index, field in enumerate(fields)
    }
    query = events.order_by("seq").annotate(**cells).values_list(*cells).query
    sql, params = query.sql_with_params()
    return f"COPY ({sql}) TO STDOUT (FORMAT csv)", tuple(params)


def csv_copy_chunks(
    events: QuerySet, fields: tuple[str, ...], *, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[bytes]:
    """The CSV file of ``events``, header first, in pieces of about ``chunk_bytes``."""
    yield "".join(csv_chunks(fields, ())).encode()
    statement, params = copy_statement(events, fields)
    rows: list = []
    size = 0
    # In a transaction of its own (a savepoint inside the caller's), so that a stream dropped
    # half-way (the generator closed: psycopg cancels the COPY) leaves the caller's intact.
    with transaction.atomic(), connection.cursor() as cursor, connection.wrap_database_errors:
        with cursor.cursor.copy(statement, params or None) as copy:
            for row in copy:  # one row a message, ending in its LF
                rows.append(row[:-1])
                size += len(row)
                if size >= chunk_bytes:
                    yield b"\r\n".join(rows) + b"\r\n"
                    rows, size = [], 0
    if rows:
        yield b"\r\n".join(rows) + b"\r\n"
