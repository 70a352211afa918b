"""On PostgreSQL the database itself refuses to change history, whatever the ORM does."""

import pytest
from django.db import DatabaseError, connection, transaction

from audit.models import AuditEvent
from audit.services import audit_record
from audit.verify import audit_chain_verify

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def _refused(statement: str, params=(), *, setup: tuple[str, ...] = ()) -> bool:
    """Run statement in a savepoint of its own; True if the append-only trigger refused it."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            for step in setup:
                cursor.execute(step)
            cursor.execute(statement, params)
    except DatabaseError as error:
        return "append-only" in str(error)
    return False


@pytest.fixture
def events():
    return [audit_record(action="test.event", details={"n": n}) for n in range(3)]


def test_the_trigger_refuses_update(events):
    assert _refused("UPDATE audit_auditevent SET details = '{}' WHERE seq = %s", [2])
    assert _refused("UPDATE audit_auditevent SET seq = seq + 100")
    assert AuditEvent.objects.get(seq=2).details == {"n": 1}


def test_the_trigger_refuses_delete(events):
    assert _refused("DELETE FROM audit_auditevent WHERE seq = %s", [3])
    assert _refused("DELETE FROM audit_auditevent")
    assert AuditEvent.objects.count() == 3


def test_the_trigger_refuses_truncate_without_the_test_flush_setting(events):
    setup = (
        # The test settings open the escape hatch for test-database flushes; close it.
        "SET LOCAL pim.allow_audit_truncate = 'off'",
        # Run the deferred foreign-key checks of the inserts above now: PostgreSQL will not
        # TRUNCATE a table with pending trigger events, which would hide the refusal.
        "SET CONSTRAINTS ALL IMMEDIATE",
    )
    assert _refused("TRUNCATE audit_auditevent", setup=setup)
    assert _refused("TRUNCATE audit_auditevent CASCADE", setup=setup)
    assert AuditEvent.objects.count() == 3


def test_the_chain_still_verifies_after_refused_attempts(events):
    _refused("DELETE FROM audit_auditevent WHERE seq = 2")
    _refused("UPDATE audit_auditevent SET hash = 'x'")

    assert audit_chain_verify().ok


def test_inserting_is_still_allowed(events):
    audit_record(action="test.more")

    assert AuditEvent.objects.count() == 4
