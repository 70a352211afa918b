import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from audit import chain, chain_keys
from audit.models import AuditChainHead, AuditEvent
from audit.services import audit_record
from audit.verify import ChainWalker, Fault, audit_chain_verify, check_anchor, iter_events

pytestmark = pytest.mark.django_db


def _verify_command() -> str:
    out = StringIO()
    call_command("audit_verify", stdout=out)
    return out.getvalue()


def _id(seq: int) -> int:
    return AuditEvent.objects.values_list("id", flat=True).get(seq=seq)


def test_audit_verify_passes_a_clean_chain_and_names_its_head(chain_of):
    events = chain_of(7)

    assert _verify_command().splitlines() == [
        f"OK: 7 events, head #7 {events[-1].hash}",
        "OK: 7 event MACs good, every event from #1 on; the chain head's MAC good",
    ]


def test_audit_verify_passes_an_empty_log():
    assert _verify_command() == f"OK: 0 events, head #0 {chain.GENESIS_HASH}\n"


def test_the_walk_reads_the_log_in_batches(chain_of, django_assert_num_queries, monkeypatch):
    chain_of(10)
    fetches = []

    def fetched(cursor, batch_size):  # audit.verify._fetched, noting each fetch's size
        while rows := cursor.fetchmany(batch_size):
            fetches.append(len(rows))
            yield from rows

    monkeypatch.setattr("audit.verify._fetched", fetched)
    if connection.vendor == "postgresql":
        # One statement through a server-side cursor (its FETCHes are not Django queries), in
        # a savepoint of its own: the head before and after, the checkpoints, the savepoint.
        with django_assert_num_queries(5):
            result = audit_chain_verify(batch_size=4)
        assert fetches == [4, 4, 2]
    else:
        # Three keyset queries of four (the last one short), the chain head before and after,
        # and the signed checkpoints (none here).
        with django_assert_num_queries(6):
            result = audit_chain_verify(batch_size=4)

    assert (result.ok, result.count, result.last_seq) == (True, 10, 10)


def test_an_edited_event_is_named(chain_of, tamper):
    chain_of(6)
    tamper.set_details(4, json.dumps({"n": 400}))

    result = audit_chain_verify()

    assert (result.problem.fault, result.problem.seq, result.problem.id) == (Fault.EDITED, 4, _id(4))
    assert result.count == 3
    with pytest.raises(CommandError, match=r"event #4 \(id \d+\): edited"):
        _verify_command()


def test_an_edited_event_is_named_even_when_its_hash_was_recomputed(chain_of, tamper):
    events = chain_of(6)
    forged = {
        **vars(AuditEvent.objects.get(seq=4)),
        "details": {"n": 400},
        "details_text": chain.canonical_details({"n": 400}),
    }
    tamper.set_details(4, json.dumps({"n": 400}))
    tamper.set_hash(4, chain.event_hash(events[2].hash, forged))

    result = audit_chain_verify()

    assert (result.problem.fault, result.problem.seq, result.problem.id) == (Fault.EDITED, 4, _id(4))
    assert result.count == 3


def test_a_deleted_event_is_named_as_missing_before_the_next_one(chain_of, tamper):
    chain_of(6)
    tamper.delete(3)

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq, problem.id) == (Fault.DELETED_BEFORE, 4, _id(4))
    assert "#3 missing" in problem.detail
    with pytest.raises(CommandError, match=r"event #4 \(id \d+\): deleted before: #3 missing"):
        _verify_command()


def test_several_deleted_events_are_named_as_a_range(chain_of, tamper):
    chain_of(8)
    tamper.delete(3, 4, 5)

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq) == (Fault.DELETED_BEFORE, 6)
    assert "#3 to #5 missing" in problem.detail


def test_a_deleted_first_event_is_caught(chain_of, tamper):
    chain_of(3)
    tamper.delete(1)

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq) == (Fault.DELETED_BEFORE, 2)


def test_two_events_with_swapped_seq_numbers_are_named_as_reordered(chain_of, tamper):
    events = chain_of(6)
    tamper.swap(2, 5)

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq, problem.id) == (Fault.REORDERED_OR_INSERTED, 2, events[4].pk)
    with pytest.raises(CommandError, match=r"event #2 \(id \d+\): reordered/inserted"):
        _verify_command()


def test_neighbours_with_swapped_seq_numbers_are_named_as_reordered(chain_of, tamper):
    events = chain_of(6)
    tamper.swap(3, 4)

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq, problem.id) == (Fault.REORDERED_OR_INSERTED, 3, events[3].pk)


def _forge(seq: int, prev_hash: str) -> AuditEvent:
    """An event made to look right: linked to its predecessor, hashed like a real one and even
    keyed with the chain key (as only an insider holding it could): what catches these is the
    chain's shape. Forgeries without the key: test_tail_attacks."""
    fields = {
        **dict.fromkeys(["target_type", "target_id", "target_label", "role_label", "scope"], ""),
        **dict.fromkeys(["request_id", "user_agent"], ""),
        "seq": seq,
        "occurred_at": timezone.now(),
        "actor_id": None,
        "actor_label": "Mallory <mallory>",
        "action": "role.assigned",
        "outcome": "success",
        "role_id": None,
        "details": {"forged": True},
        "details_text": chain.canonical_details({"forged": True}),
        "chain_version": chain.CHAIN_VERSION,
        "ip": None,
        "prev_hash": prev_hash,
    }
    digest = chain.event_hash(prev_hash, fields)
    key = chain_keys.current()
    return AuditEvent.objects.create(
        **fields, hash=digest, mac=chain.event_mac(key.secret, digest), mac_key_id=key.id
    )


def test_a_forged_event_inserted_in_the_middle_is_named(chain_of, tamper):
    events = chain_of(6)
    tamper.shift_from(4)
    forged = _forge(4, prev_hash=events[2].hash)

    result = audit_chain_verify()

    assert (result.problem.fault, result.problem.seq, result.problem.id) == (
        Fault.REORDERED_OR_INSERTED,
        4,
        forged.pk,
    )
    assert result.count == 3
    with pytest.raises(CommandError, match=rf"event #4 \(id {forged.pk}\): reordered/inserted"):
        _verify_command()


def test_a_forged_event_appended_past_the_chain_head_is_named(chain_of):
    events = chain_of(5)
    forged = _forge(6, prev_hash=events[-1].hash)

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq, problem.id) == (Fault.REORDERED_OR_INSERTED, 6, forged.pk)


def test_deleted_tail_events_show_as_a_chain_head_mismatch(chain_of, tamper):
    chain_of(6)
    tamper.delete(5, 6)

    result = audit_chain_verify()

    assert (result.problem.fault, result.problem.seq, result.problem.id) == (Fault.HEAD_MISMATCH, 5, None)
    assert "#5 to #6 missing" in result.problem.detail
    assert result.count == 4
    with pytest.raises(CommandError, match=r"event #5: chain head mismatch \(truncated tail\)"):
        _verify_command()


def test_a_rewritten_tail_shows_as_a_chain_head_mismatch(chain_of, tamper):
    events = chain_of(4)
    tamper.delete(4)
    replacement = _forge(4, prev_hash=events[2].hash)

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq, problem.id) == (Fault.HEAD_MISMATCH, 4, replacement.pk)


def test_a_deleted_chain_head_row_is_caught(chain_of):
    chain_of(3)
    AuditChainHead.objects.all().delete()

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq) == (Fault.HEAD_MISMATCH, 3)
    assert "missing" in problem.detail


def test_only_the_first_problem_is_reported(chain_of, tamper):
    chain_of(8)
    tamper.set_details(3, "{}")
    tamper.delete(6)

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq) == (Fault.EDITED, 3)


def _exported(event: dict) -> dict:
    """An event as an export file would carry it: JSON values only."""
    return json.loads(json.dumps({**event, "occurred_at": chain.format_timestamp(event["occurred_at"])}))


def test_the_same_walk_verifies_exported_events_without_the_database(chain_of):
    events = chain_of(5)
    exported = [_exported(event) for event in iter_events()]

    walker = ChainWalker(watch=[5])
    assert walker.walk(exported) is None
    assert check_anchor(walker, seq=5, hash=events[-1].hash) is None

    exported[2]["details"] = {"n": 30}
    problem = ChainWalker().walk(exported)
    assert (problem.fault, problem.seq) == (Fault.EDITED, 3)


def test_an_export_cut_short_of_a_known_head_is_caught(chain_of):
    events = chain_of(5)
    walker = ChainWalker(watch=[5])
    walker.walk(_exported(event) for event in iter_events() if event["seq"] <= 3)

    problem = check_anchor(walker, seq=5, hash=events[-1].hash)

    assert (problem.fault, problem.seq) == (Fault.HEAD_MISMATCH, 4)


def test_events_written_during_the_walk_do_not_fail_it(chain_of, monkeypatch):
    chain_of(3)
    batches = iter_events(batch_size=2)

    def events_then_a_write(**kwargs):
        for event in batches:
            yield event
            if event["seq"] == 3:
                audit_record(action="test.concurrent")

    monkeypatch.setattr("audit.verify.iter_events", events_then_a_write)
    result = audit_chain_verify()

    assert (result.ok, result.count) == (True, 3)
