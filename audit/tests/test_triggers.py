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


# Run the deferred foreign-key checks of the inserts first: PostgreSQL will not TRUNCATE a
# table with pending trigger events, which would hide the refusal.
IMMEDIATE = ("SET CONSTRAINTS ALL IMMEDIATE",)


def test_the_trigger_refuses_truncate(events):
    assert _refused("TRUNCATE audit_auditevent", setup=IMMEDIATE)
    assert _refused("TRUNCATE audit_auditevent CASCADE", setup=IMMEDIATE)
    assert _refused("TRUNCATE audit_auditcheckpoint", setup=IMMEDIATE)
    assert AuditEvent.objects.count() == 3


@pytest.mark.parametrize("scope", ["LOCAL", "SESSION"])
def test_no_session_setting_lets_truncate_through(events, scope):
    # The setting that used to open a TRUNCATE escape hatch for test flushes, which any
    # session could set: it means nothing now.
    setup = (f"SET {scope} pim.allow_audit_truncate = 'on'", *IMMEDIATE)

    assert _refused("TRUNCATE audit_auditevent", setup=setup)
    assert _refused("TRUNCATE audit_auditcheckpoint", setup=setup)
    assert AuditEvent.objects.count() == 3


def test_no_trigger_function_reads_a_session_setting():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT proname, prosrc FROM pg_proc WHERE proname IN "
            "('audit_event_refuse_change', 'audit_checkpoint_refuse_change')"
        )
        functions = dict(cursor.fetchall())

    assert set(functions) == {"audit_event_refuse_change", "audit_checkpoint_refuse_change"}
    assert not any("current_setting" in source for source in functions.values())


def test_the_chain_still_verifies_after_refused_attempts(events):
    _refused("DELETE FROM audit_auditevent WHERE seq = 2")
    _refused("UPDATE audit_auditevent SET hash = 'x'")

    assert audit_chain_verify().ok


def test_inserting_is_still_allowed(events):
    audit_record(action="test.more")

    assert AuditEvent.objects.count() == 4
