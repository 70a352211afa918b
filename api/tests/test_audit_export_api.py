"""The audit log exported through the API: auditors only (404 for everyone else), streamed,
the same filters as the list, every export audited before its first byte."""

import csv
import io
import json
from datetime import timedelta

import pytest
from django.utils import timezone

from audit import chain
from audit.event_exports import FIELDS
from audit.models import AuditEvent
from audit.services import audit_record
from tests.factories import RoleFactory

from .helpers import error

pytestmark = pytest.mark.django_db

URL = "/api/v1/audit-events/export/"


@pytest.fixture
def events(requester, approver):
    role = RoleFactory(name="Payroll Administrator")
    start = timezone.now() - timedelta(hours=1)
    return [
        audit_record(action="activation.requested", actor=requester, role=role, at=start),
        audit_record(
            action="activation.approved",
            actor=approver,
            role=role,
            details={"reason": '=HYPERLINK("x")', "note": 'line one\nline two, "quoted"'},
            at=start + timedelta(minutes=1),
        ),
        audit_record(action="role.changed", actor=approver, at=start + timedelta(minutes=2)),
    ]


def body(response) -> str:
    assert response.streaming, "the export is streamed"
    return b"".join(response.streaming_content).decode()


def exports_recorded() -> list:
    return list(AuditEvent.objects.filter(action="audit.exported").order_by("seq"))


def test_anonymous_callers_get_401(anonymous):
    response = anonymous.get(URL, {"format": "csv"})

    assert response.status_code == 401
    assert error(response)["code"] == "not_authenticated"


def test_people_without_the_auditor_role_get_404_and_nothing_is_exported(
    requester, outsider, events, token_client
):
    for person in (requester, outsider):
        response = token_client(person).get(URL, {"format": "csv"})
        assert response.status_code == 404
        assert error(response)["code"] == "not_found"
        bad_filter = token_client(person).get(URL, {"format": "pdf", "since": "yesterday"})
        assert bad_filter.status_code == 404  # not a 400: the endpoint says nothing to them
    assert not exports_recorded()


def test_csv_streams_every_event_and_reads_back_through_a_csv_reader(auditor, events, token_client):
    response = token_client(auditor).get(URL, {"format": "csv"})

    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="audit-')
    assert "no-cache" in response["Cache-Control"]
    header, *rows = list(csv.reader(io.StringIO(body(response))))
    assert header == list(FIELDS)
    exported = {int(row[0]): dict(zip(header, row, strict=True)) for row in rows}
    assert set(exported) == set(
        AuditEvent.objects.filter(seq__lt=exports_recorded()[0].seq).values_list("seq", flat=True)
    )
    approved = exported[events[1].seq]
    assert approved["action"] == "activation.approved" and approved["hash"] == events[1].hash
    details = json.loads(approved["details"])
    assert details["reason"] == '=HYPERLINK("x")' and details["note"] == 'line one\nline two, "quoted"'
    assert response["X-Audit-Export-Rows"] == str(len(rows))


def test_jsonl_lines_carry_seq_and_a_hash_chain_that_recomputes(auditor, events, token_client):
    response = token_client(auditor).get(URL, {"format": "jsonl"})

    assert response.status_code == 200
    assert response["Content-Type"] == "application/jsonl; charset=utf-8"
    lines = [json.loads(line) for line in body(response).splitlines()]
    events_out = [line for line in lines if line["type"] == "event"]
    assert [line["seq"] for line in events_out] == sorted(line["seq"] for line in events_out)
    assert {e.seq for e in events} <= {line["seq"] for line in events_out}
    for previous, line in zip(events_out, events_out[1:], strict=False):
        assert line["prev_hash"] == previous["hash"]
    for line in events_out:
        assert chain.event_hash(line["prev_hash"], line) == line["hash"]


def test_the_filters_are_those_of_the_list(auditor, events, token_client):
    client = token_client(auditor)

    def actions(**query) -> list[str]:
        lines = body(client.get(URL, {"format": "jsonl", **query})).splitlines()
        return [json.loads(line)["action"] for line in lines if json.loads(line)["type"] == "event"]

    assert actions(action="activation.*") == ["activation.requested", "activation.approved"]
    assert actions(actor="approver", action="activation.*") == ["activation.approved"]
    assert actions(role=str(events[0].role_id)) == ["activation.requested", "activation.approved"]
    assert actions(since=(events[1].occurred_at).isoformat(), until=events[2].occurred_at.isoformat()) == [
        "activation.approved"
    ]
    assert actions(actor="nobody") == []


def test_every_export_is_audited_with_its_filter_and_row_count(auditor, events, token_client):
    response = token_client(auditor).get(URL, {"format": "csv", "action": "activation.*"})
    body(response)

    [exported] = exports_recorded()
    assert exported.actor == auditor
    assert exported.details["format"] == "csv"
    assert exported.details["filter"] == {"action": "activation.*"}
    assert exported.details["rows"] == 2
    assert exported.details["through_seq"] == exported.seq - 1  # pinned before its own event


@pytest.mark.parametrize("query", [{}, {"format": "xlsx"}, {"format": "csv", "since": "yesterday"}])
def test_a_missing_or_unknown_format_or_a_bad_filter_is_a_400(auditor, token_client, query):
    response = token_client(auditor).get(URL, query)

    assert response.status_code == 400
    assert response["Content-Type"] == "application/json"
    assert set(error(response)["fields"]) <= {"format", "since"} and error(response)["fields"]
    assert not exports_recorded()


def test_head_is_refused_so_no_export_is_recorded_without_a_download(auditor, token_client):
    response = token_client(auditor).head(URL, {"format": "csv"})

    assert response.status_code == 405
    assert not exports_recorded()
