"""Review reports for auditors (SPEC 2.5): every item of a run, as CSV or XLSX, and the
history of a recurring review (every item of every run, a run per block of rows).

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
from .models import ReviewDefinition, ReviewInstance, ReviewItem

CHUNK = 2000
COLUMNS = (
    "Principal",
    "Role",
    "Scope",
    "Assignment type",
    "Reviewers",
    "Decision",
    "Accepted recommendation",
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
        "Yes" if item.from_recommendation else "",
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


HISTORY_COLUMNS = ("Run", "Run started (UTC)", "Run ended (UTC)", "Run status", *COLUMNS)


def history_rows(definition: ReviewDefinition, *, timestamp: Callable = _utc_text) -> Iterator[list]:
    """Every item of every run of the definition, oldest run first, each row led by its run."""
    for instance in selectors.definition_instances(definition=definition)[::-1]:
        run = [
            instance.occurrence + 1,
            timestamp(instance.starts_at),
            timestamp(instance.ends_at),
            instance.get_status_display(),
        ]
        for item in selectors.report_items(instance=instance).iterator(chunk_size=CHUNK):
            yield run + _row(item, timestamp)


def history_csv_stream(definition: ReviewDefinition) -> Iterator[str]:
    return csv_chunks(HISTORY_COLUMNS, history_rows(definition))


def history_xlsx_stream(definition: ReviewDefinition) -> Iterator[bytes]:
    return xlsx_chunks(
        HISTORY_COLUMNS, history_rows(definition, timestamp=_utc_naive), title="Review history"
    )


def history_filename(definition: ReviewDefinition, extension: str) -> str:
    name = "".join(c if c.isalnum() else "-" for c in definition.name.lower()).strip("-")[:60]
    return f"review-history-{name or 'report'}.{extension}"


def review_history_exported(*, actor: User, definition: ReviewDefinition, file_format: str) -> None:
    """Audit that someone took the history of a recurring review away."""
    audit_record(
        action="review.history_exported",
        actor=actor,
        target=definition,
        details={"format": file_format, "runs": definition.instances.count(), "definition": definition.name},
    )


def report_summary(instance: ReviewInstance) -> dict[str, int]:
    """Counts for the completion email: decided / total, per decision and per outcome."""
    counts = selectors.instance_decision_counts(instance=instance)
    return counts


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
