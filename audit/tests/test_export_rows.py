"""The export's row reader: on PostgreSQL the batch query is compiled once and its rows taken
raw (audit.event_exports.iter_rows_raw). The rows, and the CSV made of them, are the same as
through the ORM, formula-looking text (escaped) and JSON details included."""

import pytest

from audit import event_exports
from audit.models import AuditEvent
from audit.services import AuditEntry, audit_record_many
from common.exports import csv_chunks
from tests.factories import RoleFactory, UserFactory

pytestmark = pytest.mark.django_db

FORMULAS = ["=cmd|' /C calc'!A0", "+1+1", "-2", "@SUM(A1)", "\tx", "\rx", 'plain, with "quotes"\nand a line']


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


def test_raw_rows_are_the_orms_rows(events):
    orm = list(event_exports.iter_rows_orm(events, batch_size=4))

    assert list(event_exports.iter_rows(events, batch_size=4)) == orm
    if event_exports.connection.vendor == "postgresql":
        assert list(event_exports.iter_rows_raw(events.filter(action="test.formula"), batch_size=4)) == [
            row for row in orm if row[event_exports.FIELDS.index("action")] == "test.formula"
        ]
    assert len(orm) == len(FORMULAS) * 3 + 1


def test_the_csv_export_is_the_one_the_orm_rows_make_with_formulas_escaped(events):
    export = event_exports.audit_export_start(actor=None, events=events, params={}, format="csv")
    pinned = events.filter(seq__lte=export.through_seq)
    expected = "".join(
        csv_chunks(
            event_exports.FIELDS, (event_exports._cells(row) for row in event_exports.iter_rows_orm(pinned))
        )
    )

    body = "".join(event_exports.export_chunks(export))

    assert body == expected
    assert "'=HYPERLINK" in body and "'@Role" in body and "'=cmd|" in body
    assert "\n=" not in body and ",=" not in body and ",+" not in body and ",@" not in body
