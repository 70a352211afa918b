"""Review reports: CSV and XLSX with every item, streamed, formula-safe, UTC, audited, for
auditors and administrators only."""

import csv
import io
from datetime import UTC, datetime, timedelta

import openpyxl
import pytest
import time_machine
from django.urls import reverse

from audit.models import AuditEvent
from reviews import reports, services
from reviews.models import ReviewItem
from reviews.reports import COLUMNS
from tests.factories import EligibleAssignmentFactory, RoleFactory, UserFactory

from .helpers import definition_create, signed_in, start

pytestmark = pytest.mark.django_db

DECIDED_AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture
def run(reviewer):
    role = RoleFactory(name="Payroll Administrator")
    for name in ("keeper", "leaver", "silent"):
        EligibleAssignmentFactory(
            user=UserFactory(username=name, manager=reviewer),
            role=role,
            starts_at=DECIDED_AT - timedelta(days=10),
            ends_at=DECIDED_AT + timedelta(days=300),
        )
    with time_machine.travel(DECIDED_AT - timedelta(hours=1), tick=False):
        instance = start(
            definition_create(roles=[role], name="Payroll quarterly", start_date=DECIDED_AT.date())
        )
    with time_machine.travel(DECIDED_AT, tick=False):
        items = {i.user.username: i for i in instance.items.select_related("user")}
        services.review_item_decide(
            reviewer=reviewer, item=items["keeper"], decision="approve", justification="Runs payroll"
        )
        services.review_item_decide(
            reviewer=reviewer, item=items["leaver"], decision="deny", justification="Left the team"
        )
    with time_machine.travel(instance.ends_at, tick=False):
        services.review_instances_close_due()
    instance.refresh_from_db()
    return instance


def download(client, run, file_format):
    response = client.get(reverse(f"reviews:report_{file_format}", args=[run.pk]))
    assert response.status_code == 200, response.status_code
    assert response.streaming
    return response, b"".join(response.streaming_content)


def csv_rows(content: bytes) -> list[dict]:
    return list(csv.DictReader(io.StringIO(content.decode("utf-8"), newline="")))


def xlsx_rows(content: bytes) -> list[dict]:
    sheet = openpyxl.load_workbook(io.BytesIO(content), read_only=True).active
    header, *rows = list(sheet.iter_rows(values_only=True))
    return [dict(zip(header, row, strict=True)) for row in rows]


def by_principal(rows) -> dict:
    return {row["Principal"].split(" <")[0]: row for row in rows}


def test_the_auditor_downloads_a_csv_with_every_item_and_decision(run, auditor):
    response, content = download(signed_in(auditor), run, "csv")
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="review-payroll-quarterly-{run.starts_at:%Y-%m-%d}.csv"'
    )
    rows = csv_rows(content)
    assert list(rows[0]) == list(COLUMNS)
    rows = by_principal(rows)
    assert set(rows) == {"Keeper", "Leaver", "Silent"}
    leaver = rows["Leaver"]
    assert leaver["Role"] == "Payroll Administrator" and leaver["Scope"] == "/"
    assert leaver["Assignment type"] == "Eligible" and leaver["Reviewers"] == "Rene Reviewer <reviewer>"
    assert (leaver["Decision"], leaver["Justification"]) == ("Deny", "Left the team")
    assert leaver["Decided by"] == "Rene Reviewer <reviewer>"
    assert leaver["Recommendation"] == "Deny" and "30 days" in leaver["Recommendation reason"]
    assert leaver["Decided at (UTC)"] == "2026-03-02T09:30:00Z"
    assert leaver["Applied at (UTC)"] == run.applied_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert leaver["Outcome"] == "Removed"
    assert (rows["Keeper"]["Decision"], rows["Keeper"]["Outcome"]) == ("Approve", "Kept")
    assert (rows["Silent"]["Decision"], rows["Silent"]["Outcome"]) == ("Not decided", "No change")
    assert rows["Silent"]["Decided at (UTC)"] == ""


def test_the_auditor_downloads_an_xlsx_with_every_item_and_decision(run, auditor):
    response, content = download(signed_in(auditor), run, "xlsx")
    assert response["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert response["Content-Disposition"].endswith('.xlsx"')
    rows = by_principal(xlsx_rows(content))
    assert set(rows) == {"Keeper", "Leaver", "Silent"}
    leaver = rows["Leaver"]
    assert (leaver["Decision"], leaver["Justification"], leaver["Outcome"]) == (
        "Deny",
        "Left the team",
        "Removed",
    )
    assert leaver["Decided at (UTC)"] == datetime(2026, 3, 2, 9, 30)  # noqa: DTZ001 - spreadsheets hold naive UTC
    assert rows["Silent"]["Decided at (UTC)"] is None


def test_exporting_a_report_is_audited(run, auditor):
    client = signed_in(auditor)
    download(client, run, "csv")
    download(client, run, "xlsx")
    events = AuditEvent.objects.filter(action="review.report_exported").order_by("seq")
    assert [e.details["format"] for e in events] == ["csv", "xlsx"]
    assert all(e.actor == auditor and e.target_id == str(run.pk) for e in events)


def test_administrators_download_reports_too(run, admin):
    download(signed_in(admin), run, "csv")


@pytest.mark.parametrize("persona", ["reviewer", "outsider", "requester"])
def test_everyone_else_gets_404_and_nothing_is_audited(run, persona, request):
    client = signed_in(request.getfixturevalue(persona))
    for file_format in ("csv", "xlsx"):
        assert client.get(reverse(f"reviews:report_{file_format}", args=[run.pk])).status_code == 404
    assert not AuditEvent.objects.filter(action="review.report_exported").exists()


def test_reports_are_get_only(run, auditor):
    client = signed_in(auditor)
    assert client.head(reverse("reviews:report_csv", args=[run.pk])).status_code == 405
    assert client.post(reverse("reviews:report_csv", args=[run.pk])).status_code == 405


FORMULAS = {
    '=HYPERLINK("http://evil")': '\'=HYPERLINK("http://evil")',
    "+1+2": "'+1+2",
    "-2+3": "'-2+3",
    "@SUM(A1)": "'@SUM(A1)",
    "\t=1": "'\t=1",
    "\r=1": "'\r=1",
}


def test_formula_cells_are_neutralised_in_csv_and_xlsx(run, auditor):
    item = run.items.get(user__username="leaver")
    client = signed_in(auditor)
    for dangerous, safe in FORMULAS.items():
        ReviewItem.objects.filter(pk=item.pk).update(principal_label=dangerous, justification=dangerous)
        _, content = download(client, run, "csv")
        [row] = [r for r in csv_rows(content) if r["Principal"] not in ("Keeper <keeper>", "Silent <silent>")]
        assert (row["Principal"], row["Justification"]) == (safe, safe)
        _, content = download(client, run, "xlsx")
        [row] = [
            r for r in xlsx_rows(content) if r["Principal"] not in ("Keeper <keeper>", "Silent <silent>")
        ]
        safe = safe.replace("\r", "\n")  # XML reads every line break back as \n
        assert (row["Principal"], row["Justification"]) == (safe, safe)


def test_a_nul_led_cell_is_neutralised_and_the_xlsx_still_opens(run, monkeypatch):
    # PostgreSQL cannot store a NUL at all; on the way out the writers must still cope with one.
    row = ["\x00=1+1", *[""] * (len(COLUMNS) - 1)]
    monkeypatch.setattr(reports, "report_rows", lambda instance, **kwargs: iter([row]))
    [parsed] = csv_rows("".join(reports.csv_stream(run)).encode())
    assert parsed["Principal"] == "'\x00=1+1"
    [parsed] = xlsx_rows(b"".join(reports.xlsx_stream(run)))
    assert parsed["Principal"].startswith("'") and parsed["Principal"].endswith("=1+1")


def test_the_report_of_a_large_run_is_read_in_chunks(reviewer, auditor, django_assert_max_num_queries):
    role = RoleFactory(name="Bulk")
    for n in range(60):
        EligibleAssignmentFactory(user=UserFactory(username=f"u{n}", manager=reviewer), role=role)
    run = start(definition_create(roles=[role], name="Bulk"))
    client = signed_in(auditor)
    with django_assert_max_num_queries(40):
        _, content = download(client, run, "csv")
    assert len(csv_rows(content)) == 60
