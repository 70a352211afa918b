"""The export's row readers and its CSV on PostgreSQL.

On PostgreSQL the CSV is written by the database (COPY … TO STDOUT, audit.event_export_copy)
and the other formats read one server-side cursor (audit.event_exports.iter_rows_cursor). The
rows are the ORM's, and the COPY file is the one Python's csv writer makes of them, cell for
cell and byte for byte, formula-looking text (escaped, details included), quotes, commas,
line breaks, backslashes, unicode, NULLs and empty texts included; the one difference allowed
is how details' JSON is spelled (jsonb's text: the same value)."""

import csv
import io
import json
import uuid
from datetime import UTC, datetime

import pytest
from django.db import connection

from audit import event_exports
from audit.event_export_copy import copy_statement, csv_copy_chunks
from audit.models import AuditEvent
from audit.services import AuditEntry, audit_record_many, audit_record_prepared
from common.exports import FORMULA_TRIGGERS, csv_chunks
from tests.factories import RoleFactory, UserFactory

pytestmark = pytest.mark.django_db

FIELDS = event_exports.FIELDS
FORMULAS = ["=cmd|' /C calc'!A0", "+1+1", "-2", "@SUM(A1)", "\tx", "\rx", 'plain, with "quotes"\nand a line']
# Every text column a person or a caller can put text into (details: a key's value, and the
# whole of it as a JSON scalar).
USER_TEXT = (
    "actor_label",
    "action",
    "target_type",
    "target_id",
    "target_label",
    "role_label",
    "scope",
    "request_id",
    "user_agent",
)
TRICKY = [
    *FORMULAS,
    "",
    "a,b",
    'say "hi"',
    "line\nbreak",
    "crlf\r\nend",
    "back\\slash \\N \\.",
    "\\.",
    "ünïcødé ✓ 𝄞",
    " leading space",
    "'already quoted",
]

AT = datetime(2026, 5, 31, 23, 59, 59, 120, tzinfo=UTC)


@pytest.fixture
def events():
    actor = UserFactory(display_name='=HYPERLINK("http://evil")', username="eve")
    role = RoleFactory(name="@Role")
    audit_record_many(
        entries=[
            AuditEntry(
                action="test.formula",
                actor=actor,
                target=text,
                role=role,
                scope="/",
                details={"value": text, "ü": "é", "n": index, "nested": {"b": [1, "=2"], "a": None}},
            )
            for index, text in enumerate(FORMULAS * 3)
        ]
    )
    audit_record_many(entries=[AuditEntry(action="test.system", details={})])
    return AuditEvent.objects.all()


@pytest.fixture
def tricky_events(events):
    """An event per tricky text in every user text column at once, JSON scalars, large and
    empty details, NULL and non-NULL ids and addresses."""
    rows = []
    for index, text in enumerate(TRICKY):
        row = dict.fromkeys(USER_TEXT, text)
        row.update(
            action=text or "tricky.empty",
            role_id=uuid.UUID(int=index) if index % 3 else None,
            ip=["10.0.0.1", "2001:db8::1", None][index % 3],
            details={"text": text, "list": [text, index, 1.5, True, None]},
        )
        rows.append(row)
    for details in (-7, 3, "=x", "-y", [], {}, {"big": "x" * 100_000, "=k": "=v"}):
        rows.append({**dict.fromkeys(USER_TEXT, "plain"), "role_id": None, "details": details})
    audit_record_prepared(events=rows, at=AT)
    return AuditEvent.objects.all()


def _python_csv(events) -> str:
    """The CSV that Python writes (the SQLite path), of the same pinned rows."""
    rows = event_exports.iter_rows_orm(events)
    return "".join(csv_chunks(FIELDS, (event_exports._cells(row) for row in rows)))


def _copy_csv(events, **kwargs) -> str:
    return b"".join(csv_copy_chunks(events, FIELDS, **kwargs)).decode()


def _exported_csv(events) -> str:
    """The CSV export as the views make it: COPY on PostgreSQL, Python's writer elsewhere."""
    export = event_exports.audit_export_start(actor=None, events=events, params={}, format="csv")
    chunks = list(event_exports.export_chunks(export))
    return b"".join(chunks).decode() if isinstance(chunks[0], bytes) else "".join(chunks)


def _parsed(body: str) -> list[list]:
    """The cells, details read as JSON (the one cell whose spelling may differ)."""
    rows = list(csv.reader(io.StringIO(body, newline="")))
    at = FIELDS.index("details")
    for row in rows[1:]:
        row[at] = json.loads(row[at].removeprefix("'"))
    return rows


def _as_csv_writer_writes(body: str) -> str:
    """The body's own cells written again by csv.writer: the same text if and only if COPY
    quoted, escaped and ended every line as csv.writer does."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(csv.reader(io.StringIO(body, newline="")))
    return buffer.getvalue()


def test_rows_are_the_orms_rows(events):
    orm = list(event_exports.iter_rows_orm(events, batch_size=4))

    assert list(event_exports.iter_rows(events, batch_size=4)) == orm
    if connection.vendor == "postgresql":
        assert list(event_exports.iter_rows_cursor(events.filter(action="test.formula"), batch_size=4)) == [
            row for row in orm if row[FIELDS.index("action")] == "test.formula"
        ]
    assert len(orm) == len(FORMULAS) * 3 + 1


def test_the_csv_export_is_the_one_the_orm_rows_make_with_formulas_escaped(events):
    expected = _python_csv(events.all())

    body = _exported_csv(events)

    if connection.vendor == "postgresql":
        assert _parsed(body) == _parsed(expected)
        assert body == _as_csv_writer_writes(body)
    else:
        assert body == expected
    assert "'=HYPERLINK" in body and "'@Role" in body and "'=cmd|" in body
    assert "\n=" not in body and ",=" not in body and ",+" not in body and ",@" not in body


@pytest.mark.postgres
def test_copy_writes_what_python_writes_for_tricky_text_in_every_column(tricky_events):
    body = _copy_csv(tricky_events)

    expected = _python_csv(tricky_events)
    assert _parsed(body) == _parsed(expected)
    assert body == _as_csv_writer_writes(body)
    assert body.count("\r\n") >= len(_parsed(body))  # CRLF line ends, as csv.writer's
    assert len(_parsed(body)) == tricky_events.count() + 1


@pytest.mark.postgres
def test_copy_is_byte_for_byte_pythons_where_details_are_spelled_alike(tricky_events):
    # {} is spelled alike by jsonb and json.dumps: these rows' files must be identical.
    alike = tricky_events.filter(details={})

    body = _copy_csv(alike)

    assert alike.count() >= 2
    assert body.encode() == _python_csv(alike).encode()


def test_the_export_escapes_every_user_text_column_and_details(tricky_events):
    rows = list(csv.DictReader(io.StringIO(_exported_csv(tricky_events), newline="")))

    cells = [value for row in rows for value in row.values()]
    assert [cell for cell in cells if cell.startswith(FORMULA_TRIGGERS)] == []
    for text in (text for text in FORMULAS if text.startswith(FORMULA_TRIGGERS)):
        for column in USER_TEXT:
            assert any(row[column] == "'" + text for row in rows), (column, text)
    details = [row["details"] for row in rows]
    assert "'-7" in details and "3" in details and '"=x"' in details and '"-y"' in details
    assert "[]" in details and "{}" in details


def test_the_export_writes_nulls_as_empty_cells_and_times_in_the_chains_utc_format(tricky_events):
    rows = list(csv.DictReader(io.StringIO(_exported_csv(tricky_events), newline="")))

    tricky = [row for row in rows if row["occurred_at"] == "2026-05-31T23:59:59.000120Z"]
    assert len(tricky) == tricky_events.filter(occurred_at=AT).count() == len(TRICKY) + 7
    assert {row["ip"] for row in tricky} == {"10.0.0.1", "2001:db8::1", ""}
    assert {row["actor_id"] for row in tricky} == {""}
    assert "" in {row["role_id"] for row in tricky} and str(uuid.UUID(int=1)) in {
        row["role_id"] for row in tricky
    }


@pytest.mark.postgres
def test_copy_streams_in_pieces_in_seq_order(tricky_events):
    chunks = list(csv_copy_chunks(tricky_events, FIELDS, chunk_bytes=300))

    assert len(chunks) > 10
    assert all(chunk.endswith(b"\r\n") for chunk in chunks)  # a piece ends where a row ends
    body = b"".join(chunks).decode()
    assert body == _copy_csv(tricky_events)
    seqs = [int(row["seq"]) for row in csv.DictReader(io.StringIO(body, newline=""))]
    assert seqs == sorted(seqs) == list(tricky_events.order_by("seq").values_list("seq", flat=True))


@pytest.mark.postgres
@pytest.mark.parametrize(
    "lookup",
    [
        {"action__startswith": "tricky."},
        {"scope": "a,b"},
        {"target_id": "'already quoted"},
        {"target_id": "x'); DROP TABLE audit_auditevent; --"},
        {"scope__startswith": "back\\slash"},
        {"target_label__startswith": "100%"},
        {"target_label__startswith": "_"},
        {"role_id": uuid.UUID(int=1)},
        {"occurred_at__gte": AT},
    ],
)
def test_copy_keeps_the_filter_its_values_quoted_by_psycopg(tricky_events, lookup):
    events = tricky_events.filter(**lookup)

    body = _copy_csv(events)

    assert _parsed(body) == _parsed(_python_csv(events))
    assert len(_parsed(body)) == events.count() + 1
    assert AuditEvent.objects.exists()  # the table is still there
    statement, params = copy_statement(events, FIELDS)
    assert statement.startswith("COPY (SELECT ") and "%s" in statement and params


@pytest.mark.postgres
def test_a_copy_dropped_half_way_leaves_the_connection_usable(tricky_events):
    chunks = csv_copy_chunks(tricky_events, FIELDS, chunk_bytes=100)
    next(chunks), next(chunks)

    chunks.close()  # the download was cut: psycopg cancels the COPY

    assert AuditEvent.objects.filter(action="test.system").count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_other_formats_read_one_server_side_cursor_that_is_not_held_past_its_transaction(events):
    # Autocommit here (no test transaction): Django would declare a cursor WITH HOLD, whose rows
    # PostgreSQL computes in full before the first one is read. This one lives in its own
    # transaction, batch after batch.
    rows = event_exports.iter_rows_cursor(events, batch_size=4)
    first = next(rows)
    with connection.cursor() as cursor:
        cursor.execute("SELECT is_holdable FROM pg_cursors WHERE name LIKE %s", ["_django_curs_%"])
        open_cursors = cursor.fetchall()

    rest = list(rows)

    assert open_cursors == [(False,)]
    assert [first, *rest] == list(event_exports.iter_rows_orm(events))
    assert connection.get_autocommit() and not connection.in_atomic_block
