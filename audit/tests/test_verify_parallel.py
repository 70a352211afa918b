"""audit_verify walking the log in segments, one process each (PostgreSQL): the same answer
as one process, for a sound chain and for a broken one."""

import pytest
from django.db import connection

from audit import verify
from audit.services import AuditEntry, audit_record_many

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

EVENTS = 240


@pytest.fixture
def log(monkeypatch):
    monkeypatch.setattr(verify, "PARALLEL_MIN_EVENTS", 10)
    for start in range(0, EVENTS, 60):
        audit_record_many(
            entries=[AuditEntry(action="test.event", details={"n": n}) for n in range(start, start + 60)]
        )


@pytest.fixture
def raw_sql():
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER USER")
    try:
        yield lambda sql, params=(): connection.cursor().execute(sql, params)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER USER")


def test_segments_walked_in_parallel_agree_with_one_process(log):
    head = verify._head()
    walker = verify._walk_parallel(
        head=head,
        watch=[head["last_seq"]],
        ring=verify.chain_keys.keyring(),
        macs=verify.MacCheck(keys=verify.chain_keys.keyring(), keyed_from=head["keyed_from"]),
        workers=3,
        batch_size=7,
    )
    assert walker is not None and walker.count == EVENTS and walker.last.seq == head["last_seq"]

    parallel, single = (
        verify.audit_chain_verify(workers=3, batch_size=7),
        verify.audit_chain_verify(workers=1),
    )
    assert parallel.ok and single.ok
    assert (parallel.count, parallel.last_hash, parallel.keyed) == (
        single.count,
        single.last_hash,
        single.keyed,
    )
    assert parallel.count == EVENTS


@pytest.mark.parametrize(
    "damage",
    [
        ("UPDATE audit_auditevent SET actor_label = 'someone else' WHERE seq = %s", 130),  # inside a segment
        ("DELETE FROM audit_auditevent WHERE seq = %s", 81),  # the first of the second segment
        ("DELETE FROM audit_auditevent WHERE seq = %s", 80),  # the last of the first
        ("UPDATE audit_auditevent SET mac = '', mac_key_id = '' WHERE seq = %s", 200),
    ],
)
def test_a_broken_chain_gets_the_same_first_problem_either_way(log, raw_sql, damage):
    sql, seq = damage
    raw_sql(sql, [seq])

    parallel, single = (
        verify.audit_chain_verify(workers=3, batch_size=7),
        verify.audit_chain_verify(workers=1),
    )

    assert not single.ok
    assert str(parallel.problem) == str(single.problem)
    assert parallel.count == single.count


@pytest.fixture
def mixed_log(monkeypatch):
    """120 version-2 events (as written before chain version 3), then 120 version-3 ones: the
    segment boundaries fall in either version and across the switch."""
    from django.db import transaction

    from audit.tests.test_chain_v3 import _write_version_2

    monkeypatch.setattr(verify, "PARALLEL_MIN_EVENTS", 10)
    with transaction.atomic():
        _write_version_2(120)
    audit_record_many(entries=[AuditEntry(action="test.event", details={"n": n}) for n in range(120)])


def test_a_mixed_chain_walked_in_parallel_agrees_with_one_process(mixed_log):
    parallel, single = (
        verify.audit_chain_verify(workers=3, batch_size=7),
        verify.audit_chain_verify(workers=1),
    )

    assert parallel.ok and single.ok
    assert (parallel.count, parallel.last_hash, parallel.keyed) == (240, single.last_hash, 240)


@pytest.mark.parametrize("seq", [50, 200])
def test_an_edit_in_a_mixed_chain_gets_the_same_problem_either_way(mixed_log, raw_sql, seq):
    raw_sql("UPDATE audit_auditevent SET target_label = 'forged' WHERE seq = %s", [seq])

    parallel, single = (
        verify.audit_chain_verify(workers=3, batch_size=7),
        verify.audit_chain_verify(workers=1),
    )

    assert (single.problem.fault, single.problem.seq) == (verify.Fault.EDITED, seq)
    assert str(parallel.problem) == str(single.problem)
