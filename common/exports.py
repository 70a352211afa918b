"""Streaming spreadsheet exports, safe against formula injection (shared: reviews uses it too).

``csv_chunks`` and ``xlsx_chunks`` take a header and an iterator of rows and yield the file a
piece at a time, so memory stays flat however many rows there are. Every text cell passes
through ``safe_cell``.
"""

import csv
import io
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from openpyxl import Workbook
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

# A cell starting with one of these can be run as a formula (or hides one, after a tab or
# a line break) when a spreadsheet opens the file (OWASP "CSV injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\0")
XLSX_MAX_ROWS = 1_048_576  # per sheet, the header included; more rows go on another sheet
XLSX_MAX_CELL = 32_767  # characters in one cell
CHUNK_BYTES = 64 * 1024
CSV_ROWS_PER_CHUNK = 500


def safe_cell(value: object) -> object:
    """The value with a leading apostrophe when it is text a spreadsheet could run as a
    formula; anything else unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS):
        return "'" + value
    return value


def csv_chunks(header: Sequence[object], rows: Iterable[Sequence[object]]) -> Iterator[str]:
    """A CSV file (RFC 4180, UTF-8) in pieces of a few hundred rows."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([safe_cell(value) for value in header])
    for count, row in enumerate(rows, 1):
        writer.writerow([safe_cell(value) for value in row])
        if count % CSV_ROWS_PER_CHUNK == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def xlsx_cell(value: object) -> object:
    """safe_cell, then what the XLSX format itself cannot hold: control characters (replaced),
    carriage returns (XML reads them as line feeds anyway) and text past the cell limit (cut)."""
    value = safe_cell(value)
    if isinstance(value, str):
        text: str = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value.replace("\r\n", "\n").replace("\r", "\n"))
        if len(text) > XLSX_MAX_CELL:
            text = text[: XLSX_MAX_CELL - 1] + "…"
        return text
    return value


def xlsx_chunks(
    header: Sequence[object], rows: Iterable[Sequence[object]], *, title: str = "Export"
) -> Iterator[bytes]:
    """An XLSX workbook. openpyxl cannot write a zip as a stream, so the write-only workbook
    (rows go straight to a temporary file) is saved to a temporary file that is then sent in
    pieces: the memory stays flat, the first byte waits until the last row is written."""
    workbook = Workbook(write_only=True)
    sheet = _sheet(workbook, title, 1, header)
    written = 1
    for row in rows:
        if written == XLSX_MAX_ROWS:
            sheet = _sheet(workbook, title, len(workbook.worksheets) + 1, header)
            written = 1
        sheet.append([xlsx_cell(value) for value in row])
        written += 1
    with tempfile.TemporaryFile() as file:
        workbook.save(file)
        file.seek(0)
        while chunk := file.read(CHUNK_BYTES):
            yield chunk


def _sheet(workbook: Workbook, title: str, number: int, header: Sequence[object]) -> Any:
    sheet = workbook.create_sheet(title if number == 1 else f"{title} ({number})")
    sheet.append([xlsx_cell(value) for value in header])
    return sheet
