"""Chain version 3 (audit.chain): the encoding, written by every writer, verified in the
database (fast path and ordinary path) and offline, beside version-2 events written before it."""

import hashlib
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from audit import chain, chain_keys, context
from audit.models import AuditEvent
from audit.offline_verify import read_keys, verify_export
from audit.services import audit_record, audit_record_prepared, chain_head_save, lock_chain_head
from audit.verify import ChainWalker, Fault, audit_chain_verify, iter_events, walk_events

pytestmark = pytest.mark.django_db


def test_the_version_3_message_is_the_documented_one():
    # Pinned byte for byte: a verifier written elsewhere can be checked against it.
    fields = {
        "seq": 7,
        "occurred_at": datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        "actor_id": None,
        "actor_label": "Zoë 🚀",
        "action": "test.event",
        "outcome": "success",
        "target_type": "",
        "target_id": "",
        "target_label": "",
        "role_id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "role_label": "",
        "scope": "/",
        "details_text": '{"a":1,"b":"é"}',
        "request_id": "",
        "ip": "10.0.0.1",
        "user_agent": "",
    }
    message = chain.v3_message("ab" * 32, chain.v3_texts(fields))

    expected = (
        "PIM Portal audit event v3\n" + "ab" * 32 + "\n"
        "1:7" "16:1767323045678901" "-" "5:Zoë 🚀" "10:test.event" "7:success" "0:" "0:" "0:"
        "36:12345678-1234-5678-1234-567812345678" "0:" "1:/" '15:{"a":1,"b":"é"}' "0:" "8:10.0.0.1" "0:"
    )  # fmt: skip
    assert message == expected.encode("utf-8")
    # what the writer hashes: the tail put together before the chain head is locked
    for seq in (7, 12345):
        hashed = chain.v3_hash("ab" * 32, seq, chain.v3_tail(fields))
        assert hashed == chain.event_hash("ab" * 32, {**fields, "seq": seq, "chain_version": 3})
    assert chain.v3_hash("ab" * 32, 7, chain.v3_tail(fields)) == hashlib.sha256(message).hexdigest()
    assert chain.event_hash("ab" * 32, {**fields, "chain_version": 3}) == hashlib.sha256(message).hexdigest()
    # No version-3 message can be a version-2 one: those start with the previous hash.
    assert not message.startswith(("ab" * 32).encode())


def test_a_new_event_is_version_3_and_round_trips(db):
    token = context.bind(context.RequestContext("req-1", "2001:DB8::0001", "Mozilla ✓"))
    try:
        event = audit_record(action="test.event", details={"b": [1, 2.5], "a": "ü", "when": None})
    finally:
        context.reset(token)

    stored = AuditEvent.objects.get(pk=event.pk)
    assert stored.chain_version == 3
    assert stored.details_text == '{"a":"ü","b":[1,2.5],"when":null}'
    assert stored.details == json.loads(stored.details_text)
    assert stored.ip == "2001:db8::1"  # hashed as the database gives it back
    assert chain.event_hash(stored.prev_hash, vars(stored)) == stored.hash
    result = audit_chain_verify()
    assert (result.ok, result.count, result.keyed) == (True, 1, 1)


def test_the_set_based_writer_writes_version_3_too(db):
    audit_record_prepared(
        events=[
            {
                "action": "test.event",
                "target_type": "t",
                "target_id": str(n),
                "target_label": f"target {n}",
                "role_id": str(uuid.uuid4()).upper(),  # stored (and hashed) in canonical form
                "role_label": "Role",
                "scope": "/",
                "details": {"n": n},
            }
            for n in range(3)
        ],
        at=datetime(2026, 3, 1, tzinfo=UTC),
    )

    events = AuditEvent.objects.order_by("seq")
    assert {event.chain_version for event in events} == {3}
    assert [event.details_text for event in events] == ['{"n":0}', '{"n":1}', '{"n":2}']
    assert [event.target_id for event in events] == ["0", "1", "2"]
    assert audit_chain_verify().ok


@pytest.fixture
def one_of_five(tamper, chain_of):
    """Five version-3 events; the third one is the victim of each edit (tamper first: on
    PostgreSQL its trigger switch must come before any write in the transaction)."""
    chain_of(5)
    return AuditEvent.objects.get(seq=3)


EDITS = [
    ("occurred_at", datetime(2026, 1, 1, tzinfo=UTC) + timedelta(microseconds=1)),
    ("actor_label", "Mallory"),
    ("action", "test.other"),
    ("outcome", "failure"),
    ("target_type", "roles.role"),
    ("target_id", "42"),
    ("target_label", "something else"),
    ("role_id", str(uuid.uuid4())),
    ("role_label", "Global Administrator"),
    ("scope", "/subscriptions/x"),
    ("details_text", '{"n":300}'),
    ("details_text", "not JSON: PostgreSQL's jsonb cast fails, the walk goes on in Python"),
    ("request_id", "forged"),
    ("ip", "10.6.6.6"),
    ("user_agent", "curl"),
    ("chain_version", 2),
]


@pytest.mark.parametrize(
    ("column", "value"), EDITS, ids=[f"{column}-{n}" for n, (column, _) in enumerate(EDITS)]
)
def test_editing_any_hashed_column_of_a_version_3_event_is_named(one_of_five, tamper, column, value):
    tamper.sql(f"UPDATE audit_auditevent SET {column} = %s WHERE seq = 3", [value])  # noqa: S608

    result = audit_chain_verify()

    assert (result.problem.fault, result.problem.seq, result.problem.id) == (Fault.EDITED, 3, one_of_five.pk)
    assert result.count == 2


def test_editing_the_actor_is_named(one_of_five, tamper):
    someone = get_user_model().objects.create_user(username="someone", password="x" * 20)
    tamper.sql("UPDATE audit_auditevent SET actor_id = %s WHERE seq = 3", [someone.pk])

    assert (audit_chain_verify().problem.fault, audit_chain_verify().problem.seq) == (Fault.EDITED, 3)


def test_editing_the_details_alone_is_named(one_of_five, tamper):
    # The hash covers details_text; the jsonb the pages show must still say the same.
    tamper.set_details_only(3, json.dumps({"n": 300}))

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq) == (Fault.EDITED, 3)
    assert "details" in problem.detail


def test_a_forger_who_edits_details_and_rehashes_is_caught_by_the_mac(one_of_five, tamper):
    forged = {**vars(one_of_five), "details": {"n": 300}, "details_text": '{"n":300}'}
    tamper.set_details(3, json.dumps({"n": 300}))
    tamper.set_hash(3, chain.event_hash(one_of_five.prev_hash, forged))

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq) == (Fault.EDITED, 3)
    assert "MAC" in problem.detail or "prev_hash" in problem.detail or "hash" in problem.detail


def test_a_wrong_mac_is_named(one_of_five, tamper):
    tamper.sql("UPDATE audit_auditevent SET mac = %s WHERE seq = 3", ["0" * 64])

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq) == (Fault.EDITED, 3)
    assert "MAC" in problem.detail


def test_deleted_and_reordered_version_3_events_are_named(chain_of, tamper):
    chain_of(6)
    tamper.delete(3)
    problem = audit_chain_verify().problem
    assert (problem.fault, problem.seq) == (Fault.DELETED_BEFORE, 4)


def test_reordered_version_3_events_are_named(chain_of, tamper):
    chain_of(6)
    tamper.swap(3, 4)
    problem = audit_chain_verify().problem
    assert problem.fault in (Fault.REORDERED_OR_INSERTED, Fault.EDITED)
    assert problem.seq == 3


def _write_version_2(count: int) -> None:
    """count events as the portal wrote them before version 3: canonical JSON, keyed."""
    key = chain_keys.current()
    head = lock_chain_head()
    head.keyed_from = head.keyed_from or head.last_seq + 1
    for n in range(count):
        fields = {
            "seq": head.last_seq + 1,
            "occurred_at": datetime(2025, 6, 1, tzinfo=UTC) + timedelta(seconds=n, microseconds=n),
            "actor_id": None,
            "actor_label": "system",
            "action": "test.old",
            "outcome": "success",
            "target_type": "",
            "target_id": "",
            "target_label": "",
            "role_id": uuid.uuid4(),
            "role_label": "Old role",
            "scope": "/",
            "details": {"n": n, "x": 1.5},
            "request_id": "",
            "ip": "10.0.0.2",
            "user_agent": "",
            "prev_hash": head.last_hash,
        }
        digest = chain.legacy_event_hash(head.last_hash, fields)
        AuditEvent.objects.create(
            **fields,
            hash=digest,
            mac=chain.event_mac(key.secret, digest),
            mac_key_id=key.id,
            chain_version=2,
        )
        head.last_seq, head.last_hash = fields["seq"], digest
    chain_head_save(head, key=key)


@pytest.fixture
def mixed_log(tamper, chain_of):
    """Four version-2 events, then four version-3 ones."""
    _write_version_2(4)
    chain_of(4)
    assert list(AuditEvent.objects.values_list("chain_version", flat=True)) == [2] * 4 + [3] * 4


def test_a_mixed_chain_verifies(mixed_log):
    result = audit_chain_verify()

    assert (result.ok, result.count, result.keyed) == (True, 8, 8)


@pytest.mark.parametrize("seq", [2, 6])
def test_an_edit_in_a_mixed_chain_is_named_in_either_version(mixed_log, tamper, seq):
    tamper.sql("UPDATE audit_auditevent SET action = %s WHERE seq = %s", ["forged", seq])

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq) == (Fault.EDITED, seq)


def test_a_version_2_event_relabelled_version_3_is_named(mixed_log, tamper):
    tamper.sql("UPDATE audit_auditevent SET chain_version = 3 WHERE seq = 2")

    assert (audit_chain_verify().problem.fault, audit_chain_verify().problem.seq) == (Fault.EDITED, 2)


def test_the_fast_path_and_the_ordinary_walk_agree(mixed_log):
    """walk_rows (PostgreSQL) and walk() over the ORM's dicts give the same walk."""
    keys = chain_keys.keyring()
    fast = ChainWalker(macs=_macs(keys))
    walk_events(fast)
    ordinary = ChainWalker(macs=_macs(keys))
    ordinary.walk(iter_events())

    assert fast.problem is None and ordinary.problem is None
    assert (fast.count, fast.last, fast.first_keyed) == (ordinary.count, ordinary.last, ordinary.first_keyed)
    assert fast.macs.checked == ordinary.macs.checked == 8


def _macs(keys):
    from audit.walk import MacCheck

    return MacCheck(keys=keys)


@pytest.fixture
def exporter(verified_client, auditor, tmp_path):
    client = verified_client(auditor)

    def export():
        response = client.get(reverse("audit:export"), {"format": "jsonl"})
        path = tmp_path / "export.jsonl"
        path.write_bytes(b"".join(response.streaming_content))
        return path

    return export


def test_an_export_of_a_mixed_chain_verifies_offline(exporter, signing_key, public_key_text):
    from audit.checkpoints import audit_checkpoint_write

    path = exporter()  # signs the auditor in first
    _write_version_2(3)
    audit_record(action="test.event", details={"big": 10**20, "f": 1e20, "s": "ünï"})
    audit_checkpoint_write()

    path = exporter()
    result = verify_export(path, read_keys([public_key_text]))
    assert result.ok, result.problem

    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    versions = {line["chain_version"] for line in lines if line["type"] == "event"}
    assert versions == {2, 3}
    v3 = next(line for line in lines if line.get("action") == "test.event")
    assert v3["details"] == json.loads(v3["details_text"])
    assert not any("details_text" in line for line in lines if line.get("chain_version") == 2)

    # The details shown edited alone, or the hashed text without it: both fail.
    v3["details"] = {"big": 1}
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    assert "details" in verify_export(path, read_keys([public_key_text])).problem
    del v3["details_text"]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    assert "without details_text" in verify_export(path, read_keys([public_key_text])).problem
