import csv
import io
import json
import tempfile
import tracemalloc
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone
from openpyxl import load_workbook

from audit import chain, chain_keys, event_exports
from audit.event_exports import FIELDS
from audit.models import AuditEvent
from audit.services import audit_record, chain_head_save, chain_link, chain_prepare, lock_chain_head
from audit.verify import audit_chain_verify
from audit.walk import ChainWalker
from common.exports import FORMULA_TRIGGERS, csv_chunks, safe_cell, xlsx_chunks
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

EXPORT = reverse("audit:export")
DANGEROUS = [
    '=HYPERLINK("http://evil.example","click")',
    "+1+cmd|' /C calc'!A0",
    "-2+3",
    "@SUM(1,2)",
    "\tTabbed",
    "\rCarriage",
    "\0Null",
]


def _export(client, format: str, **params):
    response = client.get(EXPORT, {**params, "format": format})
    assert response.status_code == 200, response.content
    assert response.streaming
    body = b"".join(response.streaming_content)
    return response, body


def _csv_rows(body: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(body.decode("utf-8"), newline="")))


def _xlsx_rows(body: bytes) -> list[tuple]:
    workbook = load_workbook(io.BytesIO(body), read_only=True)
    return [row for sheet in workbook.worksheets for row in sheet.iter_rows(values_only=True)]


def _jsonl(body: bytes) -> list[dict]:
    return [json.loads(line) for line in body.decode("utf-8").splitlines()]


# --- safe_cell -----------------------------------------------------------------------------


@pytest.mark.parametrize("text", DANGEROUS)
def test_safe_cell_neutralises_text_a_spreadsheet_would_run(text):
    assert safe_cell(text) == "'" + text


@pytest.mark.parametrize("value", ["plain", "a=b", " =leading space", "", 42, -5, None, 1.5])
def test_safe_cell_leaves_everything_else_alone(value):
    assert safe_cell(value) == value


# --- The three formats -------------------------------------------------------------------


@pytest.fixture
def events(db):
    user = UserFactory(username="exporter-subject", display_name="Ex Porter")
    return [
        audit_record(
            action="role.assigned", actor=user, scope="/", details={"why": 'line one\nline two, "quoted"'}
        ),
        audit_record(action="role.removed", target="plain target", details={"n": 1.5, "ü": "ünïcode"}),
    ]


def test_csv_rows_round_trip_through_the_csv_reader(verified_client, auditor, events):
    response, body = _export(verified_client(auditor), "csv", action="role.")

    rows = _csv_rows(body)
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
    assert rows[0] == list(FIELDS)
    assert len(rows) == 3
    for row, event in zip(rows[1:], events, strict=True):
        record = dict(zip(FIELDS, row, strict=True))
        stored = AuditEvent.objects.get(seq=int(record["seq"]))
        assert record["occurred_at"] == chain.format_timestamp(stored.occurred_at)
        assert record["occurred_at"].endswith("Z")
        assert json.loads(record["details"]) == stored.details
        assert (record["action"], record["hash"], record["prev_hash"]) == (
            event.action,
            event.hash,
            event.prev_hash,
        )
        assert record["actor_label"] == stored.actor_label


def test_xlsx_rows_read_back(verified_client, auditor, events):
    response, body = _export(verified_client(auditor), "xlsx", action="role.")

    rows = _xlsx_rows(body)
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert list(rows[0]) == [f"{name} (UTC)" if name == "occurred_at" else name for name in FIELDS]
    assert [row[0] for row in rows[1:]] == [event.seq for event in events]
    assert rows[1][FIELDS.index("hash")] == events[0].hash
    # A real date-time (UTC, to the millisecond a spreadsheet keeps), not text.
    occurred = rows[1][FIELDS.index("occurred_at")]
    assert isinstance(occurred, datetime)
    assert abs(occurred - events[0].occurred_at.astimezone(UTC).replace(tzinfo=None)) < timedelta(
        milliseconds=1
    )


def test_json_lines_carry_what_the_chain_hashes(verified_client, auditor, events):
    response, body = _export(verified_client(auditor), "jsonl")

    lines = _jsonl(body)
    assert response["Content-Type"].startswith("application/jsonl")
    assert all(line["type"] == "event" for line in lines)
    assert {*chain.HASHED_FIELDS, "prev_hash", "hash"} <= set(lines[0])
    for line in lines:
        assert chain.event_hash(line["prev_hash"], line) == line["hash"]
    walker = ChainWalker()
    assert walker.walk(lines) is None  # the whole log, from the genesis: an unbroken chain
    assert walker.count == len(lines)


# --- Formula injection ---------------------------------------------------------------------


def _storable() -> list[str]:
    # PostgreSQL text cannot hold NUL at all; the writers are tested with it directly below.
    return [text for text in DANGEROUS if "\0" not in text or connection.vendor != "postgresql"]


@pytest.fixture
def dangerous_events(db):
    user = UserFactory(username="formula", display_name=DANGEROUS[0])
    for text in _storable():
        audit_record(action="test.dangerous", actor=user, target=text, scope=text, details={"text": text})
    audit_record(action="@test.dangerous", target="ok")
    audit_record(action="test.dangerous", target="=A1" + "x" * 40_000)  # past the XLSX cell limit


def _in_xlsx(text: str) -> str:
    # XLSX cannot hold NUL (it becomes U+FFFD) nor keep a bare CR (XML reads it as LF).
    return text.replace("\0", "\ufffd").replace("\r", "\n")


def _assert_safe(rows):
    cells = [cell for row in rows for cell in row if isinstance(cell, str)]
    assert cells
    dangerous = [cell for cell in cells if cell.startswith(FORMULA_TRIGGERS)]
    assert dangerous == []


def test_every_csv_cell_that_could_run_is_neutralised(verified_client, auditor, dangerous_events):
    _, body = _export(verified_client(auditor), "csv", action="*")

    rows = _csv_rows(body)
    _assert_safe(rows)
    labels = {row[FIELDS.index("target_label")] for row in rows[1:]}
    assert {"'" + text for text in _storable()} <= labels
    assert "'@test.dangerous" in {row[FIELDS.index("action")] for row in rows}


def test_every_xlsx_cell_that_could_run_is_neutralised(verified_client, auditor, dangerous_events):
    _, body = _export(verified_client(auditor), "xlsx", action="*")

    rows = _xlsx_rows(body)
    _assert_safe(rows)
    labels = {row[FIELDS.index("target_label")] for row in rows[1:]}
    assert {"'" + _in_xlsx(text) for text in _storable()} <= labels
    assert all(len(cell) <= 32_767 for row in rows for cell in row if isinstance(cell, str))


def test_json_lines_keep_values_exact(verified_client, auditor, dangerous_events):
    _, body = _export(verified_client(auditor), "jsonl", action="test.")

    labels = {line["target_label"] for line in _jsonl(body)}
    assert set(_storable()) <= labels


def test_the_shared_writers_neutralise_every_trigger_including_nul():
    rows = [[text, 7, None] for text in DANGEROUS]

    csv_rows = _csv_rows("".join(csv_chunks(["text", "number", "none"], rows)).encode())
    xlsx_rows = _xlsx_rows(b"".join(xlsx_chunks(["text", "number", "none"], rows)))

    assert [row[0] for row in csv_rows[1:]] == ["'" + text for text in DANGEROUS]
    assert [row[0] for row in xlsx_rows[1:]] == ["'" + _in_xlsx(text) for text in DANGEROUS]
    assert xlsx_rows[1][1] == 7  # numbers stay numbers (and the empty cell is left out)
    _assert_safe(csv_rows)
    _assert_safe(xlsx_rows)


def test_the_shared_writers_neutralise_headers_too():
    csv_text = "".join(csv_chunks(["=header"], [["-1"]]))
    xlsx = b"".join(xlsx_chunks(["=header"], [["@x"]]))

    assert _csv_rows(csv_text.encode()) == [["'=header"], ["'-1"]]
    assert _xlsx_rows(xlsx) == [("'=header",), ("'@x",)]


# --- XLSX made to be read: widths, frozen header, autofilter, date-times ----------------------


def test_xlsx_sheets_have_widths_a_frozen_bold_header_an_autofilter_and_real_datetimes():
    moment = datetime(2026, 3, 2, 10, 30, 15, tzinfo=UTC)
    header = ["Principal", "Decided at (UTC)", "Due", "Count", "=formula"]
    rows = [
        [
            "Ada Lovelace <ada> — a rather long display name that goes on and on and on",
            moment,
            date(2026, 4, 1),
            3,
            "=1+1",
        ],
        ["bo", None, None, 12, "-2"],
    ]
    workbook = load_workbook(io.BytesIO(b"".join(xlsx_chunks(header, rows, title="Review items"))))
    sheet = workbook["Review items"]

    assert sheet.freeze_panes == "A2"
    assert sheet.auto_filter.ref == "A1:E3"
    widths = {letter: sheet.column_dimensions[letter].width for letter in "ABCDE"}
    assert widths["A"] == 60  # the longest value, capped
    assert widths["B"] == 19 + 2 and widths["C"] == 10 + 2  # yyyy-mm-dd hh:mm:ss, yyyy-mm-dd
    assert widths["D"] == 8  # a floor for short columns
    assert all(sheet.cell(row=1, column=n).font.b for n in range(1, 6))
    decided = sheet["B2"]
    assert decided.is_date and decided.value == moment.replace(tzinfo=None)  # UTC, naive
    assert decided.number_format == "yyyy-mm-dd hh:mm:ss"
    assert sheet["C2"].is_date and sheet["C2"].number_format == "yyyy-mm-dd"
    assert sheet["D3"].value == 12
    # Still formula-safe, header included.
    assert (sheet["E1"].value, sheet["E2"].value, sheet["E3"].value) == ("'=formula", "'=1+1", "'-2")
    assert sheet["E2"].data_type == "s"


def test_an_empty_xlsx_export_still_has_its_header_filter_and_widths():
    sheet = load_workbook(io.BytesIO(b"".join(xlsx_chunks(["Principal", "Role"], [])))).active
    assert sheet.auto_filter.ref == "A1:B1" and sheet.freeze_panes == "A2"
    assert sheet.column_dimensions["A"].width == len("Principal") + 2


def test_the_review_report_xlsx_has_datetime_cells(auditor, reviewer, verified_client):
    from reviews import services as reviews
    from reviews.tests.helpers import definition_create, start
    from tests.factories import EligibleAssignmentFactory, RoleFactory

    role = RoleFactory(name="Payroll Administrator")
    EligibleAssignmentFactory(user=UserFactory(manager=reviewer), role=role, ends_at=None)
    run = start(definition_create(roles=[role]))
    reviews.review_item_decide(
        reviewer=reviewer, item=run.items.get(), decision="approve", justification="ok"
    )
    response = verified_client(auditor).get(reverse("reviews:report_xlsx", args=[run.pk]))
    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).active
    header = [cell.value for cell in sheet[1]]
    decided = sheet.cell(row=2, column=header.index("Decided at (UTC)") + 1)
    assert decided.is_date and sheet.freeze_panes == "A2" and sheet.auto_filter.ref.startswith("A1:")


# --- Filters, pinning and the export's own audit event ----------------------------------------


def test_an_export_takes_the_filter(verified_client, auditor, events):
    _, body = _export(verified_client(auditor), "jsonl", action="role.removed")

    assert [line["action"] for line in _jsonl(body)] == ["role.removed"]


def test_exporting_is_audited_with_its_filter_and_row_count_before_the_first_byte(
    verified_client, auditor, events
):
    response = verified_client(auditor).get(EXPORT, {"format": "csv", "action": "role.", "scope": "/"})

    event = AuditEvent.objects.get(action="audit.exported")  # written before the stream is read
    assert (event.actor_id, event.actor_label) == (auditor.pk, "Aud Itor <auditor>")
    assert event.details == {
        "format": "csv",
        "filter": {"action": "role.", "scope": "/"},
        "rows": 1,
        "through_seq": event.seq - 1,
    }
    assert event.request_id == response["X-Request-ID"]
    assert len(_csv_rows(b"".join(response.streaming_content))) == 1 + 1
    assert response["X-Audit-Export-Rows"] == "1"


def test_an_export_holds_the_log_as_it_stood_when_it_started(verified_client, auditor, events):
    response = verified_client(auditor).get(EXPORT, {"format": "jsonl"})
    audit_record(action="test.after_start")

    lines = _jsonl(b"".join(response.streaming_content))

    exported = AuditEvent.objects.get(action="audit.exported")
    assert lines[-1]["seq"] == exported.details["through_seq"] == exported.seq - 1
    assert len(lines) == exported.details["rows"]


@pytest.mark.parametrize("params", [{"format": "pdf"}, {}, {"format": "csv", "actor": "nobody-at-all"}])
def test_a_bad_export_request_is_refused_and_not_audited(verified_client, auditor, params):
    response = verified_client(auditor).get(EXPORT, params)

    assert response.status_code == 400
    assert not AuditEvent.objects.filter(action="audit.exported").exists()


# --- Constant memory ------------------------------------------------------------------------

MB = 1024 * 1024
_INSERT = (
    "INSERT INTO audit_auditevent (seq, occurred_at, actor_label, action, outcome, target_type, target_id, "
    "target_label, role_label, scope, details, request_id, user_agent, prev_hash, hash, mac, mac_key_id, "
    "chain_version, details_text) "
    "VALUES (%s, %s, %s, %s, %s, '', '', '', '', %s, %s, '', '', %s, %s, %s, %s, %s, %s)"
)


def _add_events(count: int, batch: int = 10_000) -> None:
    """Append count properly chained events quickly: numbered, hashed and keyed exactly as
    audit_record_many does (chain_prepare, chain_link, chain_head_save), inserted with plain executemany
    rather than through the ORM (only for speed)."""
    details_field = AuditEvent._meta.get_field("details")
    key = chain_keys.current()
    with transaction.atomic(), connection.cursor() as cursor:
        head = lock_chain_head()
        at = timezone.now()
        stamp = connection.ops.adapt_datetimefield_value(at)
        rows = []
        for number in range(count):
            fields = {**BULK_EVENT, "occurred_at": at, "details": {"n": number}}
            chain_link(head, fields, chain_prepare(fields, key=key), key=key)
            details = details_field.get_db_prep_save(fields["details"], connection)
            rows.append(
                (
                    *(fields["seq"], stamp, "system", "bulk.event", "success", BULK_SCOPE, details),
                    *(fields["prev_hash"], fields["hash"], fields["mac"], fields["mac_key_id"]),
                    *(fields["chain_version"], fields["details_text"]),
                )
            )
            if len(rows) == batch:
                cursor.executemany(_INSERT, rows)
                rows = []
        if rows:
            cursor.executemany(_INSERT, rows)
        chain_head_save(head, key=key)


BULK_SCOPE = "/subscriptions/0000/resourceGroups/rg"
BULK_EVENT = {
    **dict.fromkeys(chain.HASHED_FIELDS, ""),
    "actor_id": None,
    "role_id": None,
    "ip": None,
    "actor_label": "system",
    "action": "bulk.event",
    "outcome": "success",
    "scope": BULK_SCOPE,
}


def _peak_while_exporting(client, format: str, file) -> int:
    """Peak traced bytes while the view runs and its whole stream is read (into file)."""
    file.seek(0)
    file.truncate()
    tracemalloc.start()
    try:
        response = client.get(EXPORT, {"format": format, "action": "bulk.event"})
        for chunk in response.streaming_content:
            file.write(chunk)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_bulk_helper_writes_a_valid_chain():
    audit_record(action="test.before")
    _add_events(30, batch=7)
    audit_record(action="test.after")

    assert audit_chain_verify().ok


def test_a_csv_export_of_200000_events_keeps_peak_memory_flat_and_round_trips(verified_client, auditor):
    client = verified_client(auditor)
    _add_events(20_000)
    with tempfile.TemporaryFile() as file:
        small_peak = _peak_while_exporting(client, "csv", file)
        _add_events(180_000)

        large_peak = _peak_while_exporting(client, "csv", file)

        file.seek(0)
        rows = csv.reader(io.TextIOWrapper(file, encoding="utf-8", newline=""))
        assert next(rows) == list(FIELDS)
        seqs, last = [], None
        for row in rows:
            seqs.append(int(row[0]))
            last = dict(zip(FIELDS, row, strict=True))
    assert len(seqs) == 200_000 and seqs == sorted(seqs)
    stored = AuditEvent.objects.get(seq=seqs[-1])
    assert (last["hash"], json.loads(last["details"])) == (stored.hash, stored.details)
    print(
        f"csv peak: 20,000 rows {small_peak / MB:.2f} MB, 200,000 rows {large_peak / MB:.2f} MB"
    )  # -s shows it
    assert large_peak < 8 * MB, f"{large_peak / MB:.1f} MB"
    assert large_peak < 1.5 * small_peak, f"{small_peak / MB:.2f} MB -> {large_peak / MB:.2f} MB"


@pytest.mark.parametrize(("format", "small"), [("jsonl", 2_000), ("xlsx", 1_000)])
def test_json_lines_and_xlsx_exports_keep_peak_memory_flat(
    verified_client, auditor, format, small, monkeypatch
):
    # Ten times the rows; fewer than for CSV only because tracing openpyxl is slow. Batches of a
    # thousand on every database, so both sizes span several batches: what is measured is that
    # the peak stays that of one batch however many follow.
    monkeypatch.setattr(event_exports, "RAW_BATCH_SIZE", event_exports.BATCH_SIZE)
    client = verified_client(auditor)
    _add_events(small)
    with tempfile.TemporaryFile() as file:
        small_peak = _peak_while_exporting(client, format, file)
        small_size = file.tell()
        _add_events(9 * small)

        large_peak = _peak_while_exporting(client, format, file)
        large_size = file.tell()

    print(f"{format} peak: {small} rows {small_peak / MB:.2f} MB, {10 * small} rows {large_peak / MB:.2f} MB")
    assert large_size > 5 * small_size  # the rows really went out
    assert large_peak < 4 * MB, f"{large_peak / MB:.1f} MB"
    assert large_peak < 1.5 * small_peak, f"{small_peak / MB:.2f} MB -> {large_peak / MB:.2f} MB"


def test_a_head_request_exports_nothing_and_writes_no_event(verified_client, auditor, events):
    response = verified_client(auditor).head(EXPORT, {"format": "csv"})

    assert response.status_code == 405
    assert not AuditEvent.objects.filter(action="audit.exported").exists()
