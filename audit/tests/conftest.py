"""Helpers for the audit tests: a small chain, and raw SQL that plays a database superuser."""

import pytest
from django.db import connection

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
