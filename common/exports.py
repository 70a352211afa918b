"""Streaming spreadsheet exports, safe against formula injection (shared: reviews uses it too).

``csv_chunks`` and ``xlsx_chunks`` take a header and an iterator of rows and yield the file a
piece at a time, so memory stays flat however many rows there are. Every text cell passes
through ``safe_cell``.

XLSX sheets are made to be read: a bold, frozen header row with an autofilter, columns as wide
as their header and the first rows' contents (within bounds), and date-times as real
spreadsheet date-times in UTC (said in the header of the column, e.g. "Decided at (UTC)").
"""

import csv
import io
import itertools
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Font
from openpyxl.utils import get_column_letter

# A cell starting with one of these can be run as a formula (or hides one, after a tab or
# a line break) when a spreadsheet opens the file (OWASP "CSV injection").
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\0")
XLSX_MAX_ROWS = 1_048_576  # per sheet, the header included; more rows go on another sheet
XLSX_MAX_CELL = 32_767  # characters in one cell
CHUNK_BYTES = 64 * 1024
CSV_ROWS_PER_CHUNK = 500
XLSX_WIDTH_SAMPLE = 200  # rows read ahead to size the columns (written before any row)
XLSX_MIN_WIDTH, XLSX_MAX_WIDTH = 8, 60  # in characters
XLSX_DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
XLSX_DATE_FORMAT = "yyyy-mm-dd"


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
    carriage returns (XML reads them as line feeds anyway) and text past the cell limit (cut).
    Aware date-times become naive UTC (spreadsheets know no time zone)."""
    value = safe_cell(value)
    if isinstance(value, str):
        text: str = ILLEGAL_CHARACTERS_RE.sub("\ufffd", value.replace("\r\n", "\n").replace("\r", "\n"))
        if len(text) > XLSX_MAX_CELL:
            text = text[: XLSX_MAX_CELL - 1] + "…"
        return text
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def xlsx_chunks(
    header: Sequence[object], rows: Iterable[Sequence[object]], *, title: str = "Export"
) -> Iterator[bytes]:
    """An XLSX workbook. openpyxl cannot write a zip as a stream, so the write-only workbook
    (rows go straight to a temporary file) is saved to a temporary file that is then sent in
    pieces: the memory stays flat, the first byte waits until the last row is written. The
    first rows are read ahead to size the columns (widths precede the rows in the file)."""
    rows = iter(rows)
    sample = [[xlsx_cell(value) for value in row] for row in itertools.islice(rows, XLSX_WIDTH_SAMPLE)]
    widths = column_widths(header, sample)
    workbook = Workbook(write_only=True)
    sheet = _sheet(workbook, title, 1, header, widths)
    written = 1
    for row in itertools.chain(sample, ([xlsx_cell(value) for value in row] for row in rows)):
        if written == XLSX_MAX_ROWS:
            _finish(sheet, len(header), written)
            sheet = _sheet(workbook, title, len(workbook.worksheets) + 1, header, widths)
            written = 1
        sheet.append([_typed(sheet, value) for value in row])
        written += 1
    _finish(sheet, len(header), written)
    with tempfile.TemporaryFile() as file:
        workbook.save(file)
        file.seek(0)
        while chunk := file.read(CHUNK_BYTES):
            yield chunk


def column_widths(header: Sequence[object], rows: Sequence[Sequence[object]]) -> list[int]:
    """Each column's width in characters: its longest header or sample value, within bounds."""
    widths: list[int] = []
    for index, title in enumerate(header):
        longest = max(
            [_display_length(title)] + [_display_length(row[index]) for row in rows if index < len(row)]
        )
        widths.append(min(max(longest + 2, XLSX_MIN_WIDTH), XLSX_MAX_WIDTH))
    return widths


def _display_length(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, datetime):
        return 19  # yyyy-mm-dd hh:mm:ss
    if isinstance(value, date):
        return 10
    return max((len(line) for line in str(value).splitlines()), default=0)


def _typed(sheet: Any, value: object) -> object:
    """Date-times and dates as formatted cells (a real date in the spreadsheet)."""
    if isinstance(value, date):
        cell = WriteOnlyCell(sheet, value=value)
        cell.number_format = XLSX_DATETIME_FORMAT if isinstance(value, datetime) else XLSX_DATE_FORMAT
        return cell
    return value


def _sheet(workbook: Workbook, title: str, number: int, header: Sequence[object], widths: list[int]) -> Any:
    sheet = workbook.create_sheet(title if number == 1 else f"{title} ({number})")
    for index, width in enumerate(widths, 1):
        sheet.column_dimensions[get_column_letter(index)].width = width
    sheet.freeze_panes = "A2"  # the header stays in view
    bold = Font(bold=True)
    cells = []
    for value in header:
        cell = WriteOnlyCell(sheet, value=xlsx_cell(value))
        cell.font = bold
        cells.append(cell)
    sheet.append(cells)
    return sheet


def _finish(sheet: Any, columns: int, rows: int) -> None:
    """An autofilter over the header and every row (written after the rows in the file)."""
    sheet.auto_filter.ref = f"A1:{get_column_letter(max(columns, 1))}{max(rows, 1)}"
