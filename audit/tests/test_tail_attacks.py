"""Attacks on the end of the log by someone with database rights but neither the chain key nor
the signing key: audit_verify fails and names the first bad event.

Appending and moving the chain head take only the application's own rights (INSERT on the
events, UPDATE on the head row): on PostgreSQL the attacker runs them as README's application
role. Deleting takes more than that role has (an owner's or a superuser's rights, or a legacy
set-up where the application owns its tables): the tamper fixtures switch the triggers off
for it, as such a role could.
"""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from audit import chain, chain_keys
from audit.checkpoints import audit_checkpoint_write
from audit.models import AuditChainHead, AuditCheckpoint, AuditEvent
from audit.offline_verify import read_checkpoints
from audit.services import ChainHeadMissingError, audit_record
from audit.verify import Fault, audit_chain_verify
from audit.walk import Problem

pytestmark = pytest.mark.django_db

LATER = timedelta(minutes=15)


class Attacker:
    """Plain ORM and SQL, as the application would run them (as its role on PostgreSQL)."""

    def __init__(self, roles):
        self.roles = roles

    def _as_the_application(self):
        if connection.vendor == "postgresql":
            if not self.roles.ready:
                self.roles.set_up()
            self.roles.become(self.roles.app)

    def _back(self):
        if connection.vendor == "postgresql":
            self.roles.become(None)

    def append(self, prev_hash: str, seq: int, **fields) -> AuditEvent:
        """An event with a valid (unkeyed) hash, linked to prev_hash."""
        content = {
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
            **fields,
        }
        self._as_the_application()
        try:
            return AuditEvent.objects.create(**content, hash=chain.event_hash(prev_hash, content))
        finally:
            self._back()

    def append_chain(self, after: AuditEvent | dict, count: int) -> list[AuditEvent]:
        events, previous = [], after
        for _ in range(count):
            seq, prev_hash = _seq_hash(previous)
            previous = self.append(prev_hash, seq + 1)
            events.append(previous)
        return events

    def move_head(self, *, seq: int, hash: str, **more):
        """Point the chain head row at (seq, hash), and whatever else is given."""
        columns = {"last_seq": seq, "last_hash": hash, **more}
        assignments = ", ".join(f"{name} = %s" for name in columns)
        statement = f"UPDATE audit_auditchainhead SET {assignments} WHERE id = 1"  # noqa: S608 - column names of our own
        self._as_the_application()
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement, list(columns.values()))
        finally:
            self._back()

    def head_row(self) -> dict:
        return AuditChainHead.objects.filter(pk=1).values(*chain.HEAD_FIELDS, "mac", "mac_key_id").get()

    def put_back_head(self, row: dict):
        self.move_head(
            seq=row["last_seq"],
            hash=row["last_hash"],
            **{k: v for k, v in row.items() if k not in ("last_seq", "last_hash")},
        )


def _seq_hash(event) -> tuple[int, str]:
    if isinstance(event, dict):
        return event["seq"], event["hash"]
    return event.seq, event.hash


@pytest.fixture
def attacker(database_roles):
    return Attacker(database_roles)


def _checkpoint(at=None) -> AuditCheckpoint:
    checkpoint = audit_checkpoint_write(now=at)
    assert checkpoint is not None
    return checkpoint


def _verify(*args) -> str:
    out = StringIO()
    call_command("audit_verify", *args, stdout=out)
    return out.getvalue()


def _event(seq: int) -> AuditEvent:
    return AuditEvent.objects.get(seq=seq)


# --- (a) A forged append, with the head moved onto it ----------------------------------------


def test_a_forged_append_with_a_valid_hash_and_the_head_moved_is_named(chain_of, signing_key, attacker):
    events = chain_of(5)
    _checkpoint()
    [forged] = attacker.append_chain(events[-1], 1)
    attacker.move_head(seq=6, hash=forged.hash)

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq, problem.id) == (Fault.FORGED, 6, forged.pk)
    assert "carries no MAC" in problem.detail
    with pytest.raises(CommandError, match=rf"FAILED at event #6 \(id {forged.pk}\): forged: carries no MAC"):
        _verify()


def test_forged_appends_are_named_at_the_first_one(chain_of, attacker):
    events = chain_of(5)
    forged = attacker.append_chain(events[-1], 3)
    attacker.move_head(seq=8, hash=forged[-1].hash)

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq, problem.id) == (Fault.FORGED, 6, forged[0].pk)


def test_a_forged_append_with_a_mac_copied_from_another_event_is_named(chain_of, attacker):
    events = chain_of(5)
    forged = attacker.append(events[-1].hash, 6, mac=events[-1].mac, mac_key_id=events[-1].mac_key_id)
    attacker.move_head(seq=6, hash=forged.hash)

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq, problem.id) == (Fault.EDITED, 6, forged.pk)
    assert "its MAC does not match its hash" in problem.detail


def test_a_forged_append_with_a_made_up_key_is_named(chain_of, attacker):
    events = chain_of(2)
    forged = attacker.append(events[-1].hash, 3, mac="0" * 64, mac_key_id=chain.chain_key_id(b"m" * 40))
    attacker.move_head(seq=3, hash=forged.hash)

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq) == (Fault.FORGED, 3)
    assert "not one of the configured keys" in problem.detail


# --- (b) Events deleted after the newest checkpoint ------------------------------------------


def test_events_deleted_after_the_newest_checkpoint_with_the_head_moved_back_are_caught(
    chain_of, signing_key, tamper, attacker
):
    events = chain_of(4)
    _checkpoint()
    chain_of(2)
    tamper.delete(5, 6)
    attacker.move_head(seq=4, hash=events[-1].hash)

    result = audit_chain_verify()

    assert (result.problem.fault, result.problem.seq, result.problem.id) == (Fault.HEAD_MISMATCH, 5, None)
    assert "the chain head row (#4) was changed outside the portal" in result.problem.detail
    assert result.count == 4
    with pytest.raises(CommandError, match=r"FAILED at event #5: chain head mismatch \(truncated tail\)"):
        _verify()


def test_events_deleted_after_the_newest_checkpoint_with_the_head_left_alone_are_caught(
    chain_of, signing_key, tamper
):
    chain_of(4)
    _checkpoint()
    chain_of(2)
    tamper.delete(5, 6)

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq) == (Fault.HEAD_MISMATCH, 5)
    assert "#5 to #6 missing" in problem.detail


def test_a_head_moved_back_with_its_old_counters_copied_is_still_caught(chain_of, tamper, attacker):
    events = chain_of(6)
    head = attacker.head_row()
    tamper.delete(6)
    attacker.move_head(seq=5, hash=events[4].hash, keyed_from=head["keyed_from"], mac=head["mac"])

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq) == (Fault.HEAD_MISMATCH, 6)


def test_a_deleted_head_row_stops_the_writers_instead_of_hiding_a_deleted_tail(chain_of, tamper):
    chain_of(6)
    tamper.delete(5, 6)
    tamper.sql("DELETE FROM audit_auditchainhead")

    with pytest.raises(ChainHeadMissingError):
        audit_record(action="test.after_the_attack")

    problem = audit_chain_verify().problem
    assert (problem.fault, problem.seq) == (Fault.HEAD_MISMATCH, 4)
    assert "the chain head row is missing" in problem.detail


def test_an_operator_restores_a_missing_head_and_the_log_says_so(chain_of, tamper):
    events = chain_of(4)
    tamper.sql("DELETE FROM audit_auditchainhead")
    out = StringIO()

    call_command("audit_head_restore", stdout=out)

    restored = _event(5)
    assert (restored.action, restored.details) == (
        "audit.chain_head_restored",
        {"last_seq": 4, "last_hash": events[-1].hash, "checkpoints": 0},
    )
    assert out.getvalue().startswith(f"Chain head restored at #4 {events[-1].hash}; recorded as event #5")
    assert audit_chain_verify().ok
    with pytest.raises(CommandError, match="nothing to restore"):
        call_command("audit_head_restore")


# --- (c) The newest checkpoint deleted with the tail ------------------------------------------


def _log_with_two_checkpoints(chain_of, capture) -> tuple[list, AuditCheckpoint, dict, AuditCheckpoint]:
    """Four events, checkpoint 1, the head as it stood then, two more events, checkpoint 2
    (both appended to the checkpoint file on commit)."""
    events = chain_of(4)
    now = timezone.now()
    with capture(execute=True):
        first = _checkpoint(now)
    head_then = AuditChainHead.objects.filter(pk=1).values(*chain.HEAD_FIELDS, "mac", "mac_key_id").get()
    events += chain_of(2)
    with capture(execute=True):
        second = _checkpoint(now + LATER)
    return events, first, head_then, second


@pytest.fixture
def checkpoint_file(settings, tmp_path):
    path = tmp_path / "audit-checkpoints.jsonl"
    settings.PIM_AUDIT_CHECKPOINT_FILE = str(path)
    return path


def test_the_newest_checkpoint_deleted_with_the_tail_is_caught(
    chain_of, signing_key, tamper, checkpoint_tamper, attacker, django_capture_on_commit_callbacks
):
    events, first, _, second = _log_with_two_checkpoints(chain_of, django_capture_on_commit_callbacks)
    tamper.delete(5, 6)
    checkpoint_tamper.sql("DELETE FROM audit_auditcheckpoint WHERE id = %s", [second.pk])
    attacker.move_head(seq=4, hash=events[3].hash, checkpoints=first.number)

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq, problem.id) == (Fault.HEAD_MISMATCH, 5, None)
    with pytest.raises(CommandError, match=r"FAILED at event #5: chain head mismatch"):
        _verify()


def test_a_deleted_newest_checkpoint_alone_is_caught_by_its_number(
    chain_of, signing_key, checkpoint_tamper, django_capture_on_commit_callbacks
):
    _, first, _, second = _log_with_two_checkpoints(chain_of, django_capture_on_commit_callbacks)
    checkpoint_tamper.sql("DELETE FROM audit_auditcheckpoint WHERE id = %s", [second.pk])

    problem = audit_chain_verify().problem

    assert str(problem) == (
        "checkpoint number 2 missing: the chain head records number 2 as the newest, "
        "the newest in the database is number 1"
    )
    with pytest.raises(CommandError, match="FAILED at checkpoint number 2 missing"):
        _verify()


def test_checkpoints_are_numbered_without_gaps_and_the_head_records_the_newest(chain_of, signing_key):
    chain_of(1)
    now = timezone.now()
    checkpoints = [_checkpoint(now + step * LATER) for step in range(3)]

    assert [checkpoint.number for checkpoint in checkpoints] == [1, 2, 3]
    assert AuditChainHead.objects.get().checkpoints == 3


def test_a_rollback_to_an_earlier_head_copy_is_caught_only_by_the_checkpoint_file(
    chain_of,
    signing_key,
    tamper,
    checkpoint_tamper,
    attacker,
    checkpoint_file,
    django_capture_on_commit_callbacks,
):
    events, first, head_then, second = _log_with_two_checkpoints(chain_of, django_capture_on_commit_callbacks)
    # The intruder had copied the head row when it stood at #4 (with its MAC), and now puts
    # the database back to that moment: every row is one the portal wrote.
    tamper.delete(5, 6)
    checkpoint_tamper.sql("DELETE FROM audit_auditcheckpoint WHERE id = %s", [second.pk])
    attacker.put_back_head(head_then)

    assert audit_chain_verify().ok  # what no check inside the database can see (README)
    reference = read_checkpoints(checkpoint_file)
    assert [checkpoint["number"] for checkpoint in reference] == [1, 2]

    problem = audit_chain_verify(reference=reference).problem

    assert (problem.fault, problem.seq, problem.id) == (Fault.HEAD_MISMATCH, 5, None)
    assert f"checkpoint {second.pk} (from the checkpoint file) of " in problem.detail
    assert "is at #6 but the last event is #4: #5 to #6 missing" in problem.detail
    with pytest.raises(
        CommandError, match=r"FAILED at event #5: chain head mismatch \(truncated tail\): checkpoint"
    ):
        _verify()  # reads PIM_AUDIT_CHECKPOINT_FILE by default


def test_a_wiped_log_is_caught_by_the_checkpoint_file(
    chain_of, signing_key, tamper, checkpoint_tamper, checkpoint_file, django_capture_on_commit_callbacks
):
    _log_with_two_checkpoints(chain_of, django_capture_on_commit_callbacks)
    checkpoint_tamper.sql("DELETE FROM audit_auditcheckpoint")
    tamper.sql("DELETE FROM audit_auditevent")
    tamper.sql("DELETE FROM audit_auditchainhead")

    assert audit_chain_verify().ok  # an empty log, as far as the database can tell
    with pytest.raises(
        CommandError, match=r"FAILED at event #1: .*checkpoint \d+ \(from the checkpoint file\)"
    ):
        _verify()


def test_a_checkpoint_replaced_in_the_database_differs_from_the_file(
    chain_of, signing_key, checkpoint_tamper, checkpoint_file, django_capture_on_commit_callbacks
):
    _, first, _, _ = _log_with_two_checkpoints(chain_of, django_capture_on_commit_callbacks)
    checkpoint_tamper.sql("UPDATE audit_auditcheckpoint SET signature = 'x' WHERE id = %s", [first.pk])

    # Without a public key the database's own checkpoints cannot be told from forgeries; the
    # file still can.
    problem = audit_chain_verify(keys=None, reference=read_checkpoints(checkpoint_file)).problem

    assert (
        str(problem)
        == f"checkpoint {first.pk} (at #4): differs from the copy in the checkpoint file: replaced"
    )


def test_audit_verify_reports_the_checkpoint_file(
    chain_of, signing_key, checkpoint_file, django_capture_on_commit_callbacks
):
    _log_with_two_checkpoints(chain_of, django_capture_on_commit_callbacks)

    output = _verify()

    assert output.splitlines()[-1] == (
        f"OK: {checkpoint_file} holds 2 checkpoints, all in the database as written and reached by the chain"
    )


# --- (d) A rewrite from event #20 -------------------------------------------------------------


def test_a_chain_rewritten_from_event_20_is_reported_at_20(chain_of, signing_key, tamper, attacker):
    events = chain_of(36)
    _checkpoint()
    tamper.delete(*range(20, 37))
    forged = attacker.append_chain(events[18], 17)
    attacker.move_head(seq=36, hash=forged[-1].hash)

    result = audit_chain_verify()

    assert (result.problem.fault, result.problem.seq, result.problem.id) == (Fault.FORGED, 20, forged[0].pk)
    assert result.count == 19
    with pytest.raises(CommandError, match=rf"FAILED at event #20 \(id {forged[0].pk}\): forged"):
        _verify()


def test_a_chain_rewritten_in_place_from_event_20_is_reported_at_20(chain_of, signing_key, tamper, attacker):
    chain_of(36)
    _checkpoint()
    # Edit #20 and re-hash it and every event after it, keeping their rows (and old MACs).
    rows = {row["seq"]: row for row in AuditEvent.objects.values()}
    prev_hash = rows[19]["hash"]
    for seq in range(20, 37):
        details = {"n": 2000} if seq == 20 else rows[seq]["details"]
        row = {
            **rows[seq],
            "details": details,
            "details_text": chain.canonical_details(details),
            "prev_hash": prev_hash,
        }
        row["hash"] = chain.event_hash(prev_hash, row)
        tamper.sql(
            "UPDATE audit_auditevent SET details = %s, details_text = %s, prev_hash = %s, hash = %s "
            "WHERE seq = %s",
            [json.dumps(row["details"]), row["details_text"], row["prev_hash"], row["hash"], seq],
        )
        prev_hash = row["hash"]
    attacker.move_head(seq=36, hash=prev_hash)

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq, problem.id) == (Fault.EDITED, 20, rows[20]["id"])
    assert "its MAC does not match its hash" in problem.detail


# --- Events from before the keyed chain ------------------------------------------------------


def _as_before_the_keyed_chain(tamper, attacker, count: int):
    """Make the first count events and the head look as the previous release left them."""
    tamper.sql("UPDATE audit_auditevent SET mac = '', mac_key_id = '' WHERE seq <= %s", [count])
    last = _event(count)
    attacker.move_head(seq=count, hash=last.hash, keyed_from=None, checkpoints=0, mac="", mac_key_id="")


def test_events_from_before_the_keyed_chain_verify_by_their_hash(chain_of, tamper, attacker):
    chain_of(3)
    _as_before_the_keyed_chain(tamper, attacker, 3)

    assert audit_chain_verify().ok  # an upgraded log, not yet written to
    chain_of(2)

    result = audit_chain_verify()
    assert (result.ok, result.keyed_from, result.keyed) == (True, 4, 2)
    assert AuditChainHead.objects.get().keyed_from == 4
    assert _verify().splitlines()[1] == (
        "OK: 2 event MACs good, every event from #4 on (the 3 events before the keyed chain: by hash alone); "
        "the chain head's MAC good"
    )


def test_an_unkeyed_event_after_the_switch_is_forged(chain_of, tamper, attacker):
    chain_of(3)
    _as_before_the_keyed_chain(tamper, attacker, 3)
    events = chain_of(1)
    forged = attacker.append(events[-1].hash, 5)
    attacker.move_head(seq=5, hash=forged.hash)

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq, problem.id) == (Fault.FORGED, 5, forged.pk)
    assert "every event from #4 on is keyed" in problem.detail


def test_stripping_the_keys_is_caught_by_the_signed_checkpoints(chain_of, signing_key, tamper, attacker):
    chain_of(3)
    _checkpoint()  # signs "keyed from #1"
    _as_before_the_keyed_chain(tamper, attacker, 3)  # as if it had never been keyed

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq) == (Fault.FORGED, 1)


def test_checkpoints_from_before_numbering_still_verify_and_the_count_goes_on(chain_of, signing_key):
    from audit import signing

    chain_of(2)
    key = signing_key
    fields = {
        "seq": 2,
        "hash": _event(2).hash,
        "created_at": timezone.now() - LATER,
        "previous_id": None,
        "previous_digest": "",
        "key_id": signing.key_id(key.public_key()),
    }
    AuditCheckpoint.objects.create(**fields, signature=signing.checkpoint_sign(fields, key))

    checkpoint = _checkpoint()

    assert checkpoint.number == 2
    result = audit_chain_verify(keys=signing.keyring([key.public_key()]))
    assert (result.ok, result.checkpoints, result.signed) == (True, 2, 2)


# --- Keys ---------------------------------------------------------------------------------------


def test_after_a_key_rotation_old_events_verify_with_the_old_key(chain_of, settings):
    chain_of(2)
    old = settings.PIM_AUDIT_CHAIN_KEY
    settings.PIM_AUDIT_CHAIN_KEY = f"{'n' * 40}, {old}"
    chain_of(2)

    assert audit_chain_verify().ok
    assert len(set(AuditEvent.objects.values_list("mac_key_id", flat=True))) == 2

    settings.PIM_AUDIT_CHAIN_KEY = "n" * 40
    problem = audit_chain_verify().problem
    assert (problem.fault, problem.seq) == (Fault.FORGED, 1)


def test_without_a_chain_key_nothing_is_written(chain_of, settings):
    settings.PIM_AUDIT_CHAIN_KEY = ""

    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="PIM_AUDIT_CHAIN_KEY is not set"):
        audit_record(action="test.event")
    assert not AuditEvent.objects.exists()


def test_without_a_chain_key_the_verifier_says_the_macs_were_not_checked(chain_of, settings):
    chain_of(2)
    settings.PIM_AUDIT_CHAIN_KEY = ""

    assert _verify().splitlines()[1] == (
        "event MACs and the chain head's MAC NOT checked: no chain key (PIM_AUDIT_CHAIN_KEY)"
    )


def test_the_chain_key_is_never_in_the_database(chain_of, settings):
    chain_of(2)
    secret = chain_keys.current().secret.decode()

    rows = [*AuditEvent.objects.values(), *AuditChainHead.objects.values()]

    assert secret not in json.dumps(rows, default=str)


def test_a_problem_names_the_event():
    assert str(Problem(Fault.FORGED, 20, 57, "carries no MAC")) == "event #20 (id 57): forged: carries no MAC"
