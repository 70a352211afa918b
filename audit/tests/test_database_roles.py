"""README's database roles on PostgreSQL: an owner role owns the tables, the portal connects as
a role with README's grants, and that role can append to the audit log but never change it.

The roles come from the database_roles fixture (audit/tests/conftest.py).
"""

import pytest
from django.core import checks
from django.db import DatabaseError, connection, transaction

from audit.checkpoints import audit_checkpoint_write
from audit.models import AuditCheckpoint, AuditEvent
from audit.services import audit_record
from audit.verify import audit_chain_verify

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def roles(chain_of, database_roles):
    """README's set-up, with three events written; the connection is the application's."""
    chain_of(3)
    database_roles.set_up()
    database_roles.become(database_roles.app)
    return database_roles


def _refusal(statement: str) -> str | None:
    """Run statement in a savepoint of its own; the database's error message, None if it ran."""
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")  # else TRUNCATE fails on pending checks
            cursor.execute(statement)
    except DatabaseError as error:
        return str(error)
    return None


@pytest.mark.parametrize(
    "statement",
    [
        "TRUNCATE audit_auditevent",
        "TRUNCATE audit_auditevent CASCADE",
        "DELETE FROM audit_auditevent WHERE seq = 3",
        "UPDATE audit_auditevent SET details = '{}' WHERE seq = 2",
        "TRUNCATE audit_auditcheckpoint",
        "DELETE FROM audit_auditcheckpoint",
        "UPDATE audit_auditcheckpoint SET seq = 0",
        "TRUNCATE audit_auditchainhead",
        "DELETE FROM audit_auditchainhead",
    ],
)
def test_the_application_role_cannot_truncate_delete_or_update_the_audit_tables(roles, statement):
    assert "permission denied" in _refusal(statement)
    assert AuditEvent.objects.count() == 3


@pytest.mark.parametrize(
    "statement",
    [
        "ALTER TABLE audit_auditevent DISABLE TRIGGER USER",
        "DROP TRIGGER audit_event_no_truncate ON audit_auditevent",
        "ALTER TABLE audit_auditcheckpoint DISABLE TRIGGER audit_checkpoint_no_update_delete",
        "DROP TABLE audit_auditevent",
    ],
)
def test_the_application_role_cannot_switch_the_triggers_off(roles, statement):
    assert "must be owner" in _refusal(statement)


def test_no_session_setting_opens_a_way_around_for_the_application_role(roles):
    assert _refusal("SET pim.allow_audit_truncate = 'on'") is None  # any session may set it…

    assert "permission denied" in _refusal("TRUNCATE audit_auditevent")  # …and it opens nothing
    assert AuditEvent.objects.count() == 3


def test_even_the_owner_is_refused_by_the_triggers(roles, signing_key):
    audit_checkpoint_write()
    roles.become(roles.owner)

    assert "append-only" in _refusal("TRUNCATE audit_auditevent")
    assert "append-only" in _refusal("DELETE FROM audit_auditevent")
    assert "append-only" in _refusal("UPDATE audit_auditcheckpoint SET seq = 0")


def test_the_application_role_writes_signs_and_verifies_the_log(roles, signing_key):
    audit_record(action="test.as_the_application")
    checkpoint = audit_checkpoint_write()

    assert AuditEvent.objects.count() == 4
    assert AuditCheckpoint.objects.get() == checkpoint
    assert audit_chain_verify().ok


def _owner_warnings() -> list[checks.CheckMessage]:
    messages = checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])
    return [message for message in messages if message.id == "audit.W001"]


def test_the_deploy_check_is_silent_when_the_application_role_owns_nothing(roles):
    assert _owner_warnings() == []


def test_the_deploy_check_warns_when_the_application_role_owns_the_audit_table(roles):
    roles.become(roles.owner)

    [warning] = _owner_warnings()

    assert warning.level == checks.WARNING
    assert f"role {roles.owner} " in warning.msg
    assert "audit_auditcheckpoint, audit_auditevent" in warning.msg


def test_the_deploy_check_warns_when_the_role_owns_them_through_a_role_it_belongs_to(roles):
    roles.become(None)
    with connection.cursor() as cursor:
        cursor.execute(f"GRANT {roles.owner} TO {roles.app}")
    roles.become(roles.app)

    assert [warning.id for warning in _owner_warnings()] == ["audit.W001"]


def test_the_deploy_check_warns_about_a_superuser():
    # The test database's own user: a superuser, like many a first installation.
    assert [warning.id for warning in _owner_warnings()] == ["audit.W001"]
