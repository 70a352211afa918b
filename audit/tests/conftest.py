"""Helpers for the audit tests: a small chain, raw SQL that plays a database superuser, and
README's database roles."""

import contextlib
import json
import os
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.db import DatabaseError, connection

from audit import chain
from audit.services import audit_record


@pytest.fixture
def chain_of(db):
    """chain_of(n) writes n events through audit_record and returns them in seq order."""

    def write(count: int):
        return [audit_record(action="test.event", details={"n": number}) for number in range(1, count + 1)]

    return write


class Tamper:
    """Raw SQL on the audit table, bypassing the ORM (and, on PostgreSQL, the trigger)."""

    def sql(self, statement: str, params=()):
        with connection.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.rowcount

    def set_details(self, seq: int, text: str):
        """Edit an event's details as a forger would: the jsonb and, on a version-3 event, the
        canonical text its hash covers, to the same value."""
        canonical = chain.canonical_details(json.loads(text))
        return self.sql(
            "UPDATE audit_auditevent SET details = %s, "
            "details_text = CASE WHEN chain_version >= 3 THEN %s ELSE details_text END WHERE seq = %s",
            [text, canonical, seq],
        )

    def set_details_only(self, seq: int, text: str):
        """Edit the details jsonb alone, leaving the hashed text as it was."""
        return self.sql("UPDATE audit_auditevent SET details = %s WHERE seq = %s", [text, seq])

    def set_hash(self, seq: int, digest: str):
        return self.sql("UPDATE audit_auditevent SET hash = %s WHERE seq = %s", [digest, seq])

    def delete(self, *seqs: int):
        placeholders = ", ".join(["%s"] * len(seqs))
        return self.sql(f"DELETE FROM audit_auditevent WHERE seq IN ({placeholders})", seqs)  # noqa: S608

    def swap(self, first: int, second: int):
        # Through a free number: seq is unique, and SQLite checks that row by row.
        self.sql("UPDATE audit_auditevent SET seq = -1 WHERE seq = %s", [first])
        self.sql("UPDATE audit_auditevent SET seq = %s WHERE seq = %s", [first, second])
        self.sql("UPDATE audit_auditevent SET seq = %s WHERE seq = -1", [second])

    def shift_from(self, seq: int):
        """Renumber events seq.. one up, making room for a forged event at seq."""
        self.sql("UPDATE audit_auditevent SET seq = -seq WHERE seq >= %s", [seq])
        self.sql("UPDATE audit_auditevent SET seq = 1 - seq WHERE seq < 0")


@pytest.fixture
def tamper(db):
    """On PostgreSQL, switch the append-only trigger off first, as a superuser could (the
    test's transaction rolls that back too)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
    return Tamper()


@pytest.fixture
def signing_key(settings):
    """A fresh Ed25519 key configured as PIM_AUDIT_SIGNING_KEY; returns the private key."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from audit.signing import private_key_text

    key = Ed25519PrivateKey.generate()
    settings.PIM_AUDIT_SIGNING_KEY = private_key_text(key)
    settings.PIM_AUDIT_PUBLIC_KEY = ""
    return key


@pytest.fixture
def public_key_text(signing_key):
    from audit.signing import public_key_text

    return public_key_text(signing_key.public_key())


@pytest.fixture
def checkpoint_tamper(db):
    """Raw SQL on the checkpoint table, with its append-only trigger off on PostgreSQL."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audit_auditcheckpoint DISABLE TRIGGER USER")
    return Tamper()


GRANTS_MARKER = "<!-- database-role-grants"


def readme_grants() -> list[str]:
    """The SQL statements of README's grants block (the one after GRANTS_MARKER)."""
    text = (Path(settings.BASE_DIR) / "README.md").read_text(encoding="utf-8")
    block = re.search(re.escape(GRANTS_MARKER) + r".*?```sql\n(.*?)```", text, re.DOTALL)
    assert block, "README lost its database-role-grants block"
    lines = [line for line in block.group(1).splitlines() if not line.lstrip().startswith("--")]
    return [statement.strip() for statement in "\n".join(lines).split(";") if statement.strip()]


class DatabaseRoles:
    """README's roles: an owner role that owns every table, and the application's role with
    README's grants (its name put in place of pim_app).

    They are created inside the test's transaction (rolled back at the end, never seen by
    other sessions), and ``become`` switches the connection with SET ROLE, which checks
    privileges exactly as a connection logged in as that role would."""

    def __init__(self):
        suffix = os.getpid()  # roles are cluster-wide: one name per test process
        self.owner = f"pim_test_owner_{suffix}"
        self.app = f"pim_test_app_{suffix}"
        self.ready = False

    def set_up(self):
        with connection.cursor() as cursor:
            # ALTER TABLE waits for nothing: run the inserts' deferred foreign-key checks now.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"CREATE ROLE {self.owner} NOLOGIN")
            cursor.execute(f"CREATE ROLE {self.app} NOLOGIN")
            cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
            for (table,) in cursor.fetchall():
                cursor.execute(f'ALTER TABLE "{table}" OWNER TO {self.owner}')
            cursor.execute(f"SET ROLE {self.owner}")
            for statement in readme_grants():
                cursor.execute(statement.replace("pim_app", self.app))
            cursor.execute("RESET ROLE")
        self.ready = True

    def become(self, role: str | None):
        with connection.cursor() as cursor:
            cursor.execute(f"SET ROLE {role}" if role else "RESET ROLE")


@pytest.fixture
def database_roles(db):
    """README's database roles (PostgreSQL only); call set_up() once the data is written.
    The connection goes back to the test database's own user at the end."""
    roles = DatabaseRoles()
    yield roles
    if roles.ready:
        with contextlib.suppress(DatabaseError):  # an aborted transaction resets it anyway
            roles.become(None)
