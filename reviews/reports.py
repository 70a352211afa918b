"""Review reports for auditors (SPEC 2.5): every item of a run, as CSV or XLSX.

Both are produced in constant memory: items come from the database in chunks and the files
are written and sent in pieces by common.exports (the same streaming, formula-safe writers as
the audit log exports). Timestamps are UTC.
"""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

from accounts.models import User
from audit.services import audit_record
from common.exports import csv_chunks, xlsx_chunks

from . import selectors
from .models import ReviewInstance, ReviewItem

CHUNK = 2000
COLUMNS = (
    "Principal",
    "Role",
    "Scope",
    "Assignment type",
    "Reviewers",
    "Decision",
    "Decided by",
    "Justification",
    "Recommendation",
    "Recommendation reason",
    "Decided at (UTC)",
    "Applied at (UTC)",
    "Outcome",
    "Outcome detail",
)
CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _utc_text(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment else ""


def _utc_naive(moment: datetime | None) -> datetime | None:
    # Spreadsheets know no time zone (openpyxl refuses aware date-times): UTC, said in the header.
    return moment.astimezone(UTC).replace(tzinfo=None) if moment else None


def report_rows(instance: ReviewInstance, *, timestamp: Callable = _utc_text) -> Iterator[list]:
    """One list per item, in COLUMNS order, read from the database in chunks."""
    for item in selectors.report_items(instance=instance).iterator(chunk_size=CHUNK):
        yield _row(item, timestamp)


def _row(item: ReviewItem, timestamp: Callable) -> list:
    return [
        item.principal_label,
        item.role.name,
        item.scope,
        item.get_assignment_type_display(),
        ", ".join(link.reviewer.label for link in item.reviewer_links.all()),
        item.get_decision_display() if item.decision else "Not decided",
        item.decided_by.label if item.decided_by is not None else "",
        item.justification,
        item.get_recommendation_display() if item.recommendation else "",
        item.recommendation_reason,
        timestamp(item.decided_at),
        timestamp(item.applied_at),
        item.get_outcome_display() if item.outcome else "",
        item.outcome_detail,
    ]


def csv_stream(instance: ReviewInstance) -> Iterator[str]:
    """The report as CSV, in pieces, as it is sent."""
    return csv_chunks(COLUMNS, report_rows(instance))


def xlsx_stream(instance: ReviewInstance) -> Iterator[bytes]:
    """The report as an XLSX workbook, in pieces (written to a temporary file first)."""
    return xlsx_chunks(COLUMNS, report_rows(instance, timestamp=_utc_naive), title="Review items")


def report_filename(instance: ReviewInstance, extension: str) -> str:
    name = "".join(c if c.isalnum() else "-" for c in instance.definition.name.lower()).strip("-")[:60]
    return f"review-{name or 'report'}-{instance.starts_at:%Y-%m-%d}.{extension}"


def review_report_exported(*, actor: User, instance: ReviewInstance, file_format: str) -> None:
    """Audit that someone took the report of a run away."""
    audit_record(
        action="review.report_exported",
        actor=actor,
        target=instance,
        details={"format": file_format, "items": instance.item_count, "definition": instance.definition.name},
    )
