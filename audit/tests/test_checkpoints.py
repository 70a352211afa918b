import base64
import hashlib
import json
import logging
from datetime import timedelta
from io import StringIO

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core import checks
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from audit import chain_keys, signing
from audit.checkpoints import audit_checkpoint_write, checkpoint_dict, verification_keys
from audit.models import AppendOnlyError, AuditChainHead, AuditCheckpoint, AuditEvent
from audit.services import audit_record
from audit.tasks import audit_checkpoint_write as checkpoint_task
from audit.verify import Fault, audit_chain_verify

pytestmark = pytest.mark.django_db

LATER = timedelta(minutes=15)


def _verify(*args) -> str:
    out = StringIO()
    call_command("audit_verify", *args, stdout=out)
    return out.getvalue()


def _checkpoint(at=None) -> AuditCheckpoint:
    checkpoint = audit_checkpoint_write(now=at)
    assert checkpoint is not None
    return checkpoint


# --- Writing -------------------------------------------------------------------------------


def test_a_checkpoint_signs_the_chain_head(chain_of, signing_key):
    events = chain_of(4)

    checkpoint = _checkpoint()

    assert (checkpoint.seq, checkpoint.hash) == (4, events[-1].hash)
    assert checkpoint.key_id == signing.key_id(signing_key.public_key())
    assert (checkpoint.previous_id, checkpoint.previous_digest) == (None, "")
    stored = checkpoint_dict(AuditCheckpoint.objects.get())
    signing_key.public_key().verify(base64.b64decode(stored["signature"]), signing.checkpoint_message(stored))


def test_each_checkpoint_names_the_one_before_it_and_is_written_also_when_nothing_happened(
    chain_of, signing_key
):
    chain_of(2)
    first = _checkpoint()

    second = _checkpoint(timezone.now() + LATER)

    assert (second.seq, second.hash) == (first.seq, first.hash)
    assert second.previous_id == first.pk
    assert second.previous_digest == signing.checkpoint_digest(checkpoint_dict(first))


def test_running_the_job_twice_in_a_row_writes_one_checkpoint(chain_of, signing_key):
    chain_of(1)
    now = timezone.now()

    assert audit_checkpoint_write(now=now) is not None
    assert audit_checkpoint_write(now=now + timedelta(minutes=5)) is None
    assert audit_checkpoint_write(now=now + LATER) is not None
    assert AuditCheckpoint.objects.count() == 2


def test_an_empty_log_gets_a_checkpoint_of_the_genesis(signing_key):
    checkpoint = _checkpoint()

    assert (checkpoint.seq, checkpoint.hash) == (0, "0" * 64)


def test_without_a_key_nothing_is_written_and_a_warning_is_logged(chain_of, settings, caplog):
    settings.PIM_AUDIT_SIGNING_KEY = ""
    settings.DEBUG = False
    chain_of(1)

    with caplog.at_level(logging.WARNING, logger="audit.checkpoints"):
        assert audit_checkpoint_write() is None

    assert not AuditCheckpoint.objects.exists()
    assert "PIM_AUDIT_SIGNING_KEY is not set" in caplog.text


def test_the_celery_task_writes_a_checkpoint(chain_of, signing_key):
    chain_of(1)

    checkpoint_task.delay()

    assert AuditCheckpoint.objects.get().seq == 1


def test_a_pem_signing_key_works_as_well_as_base64(chain_of, settings):
    from cryptography.hazmat.primitives import serialization

    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    settings.PIM_AUDIT_SIGNING_KEY = pem.decode().replace("\n", "\\n")  # as one env line
    chain_of(1)

    assert _checkpoint().key_id == signing.key_id(key.public_key())


def test_each_committed_checkpoint_is_appended_to_the_checkpoint_file(
    chain_of, signing_key, settings, tmp_path, django_capture_on_commit_callbacks
):
    path = tmp_path / "audit-checkpoints.jsonl"
    settings.PIM_AUDIT_CHECKPOINT_FILE = str(path)
    chain_of(2)

    with django_capture_on_commit_callbacks(execute=True):
        first = _checkpoint()
    with django_capture_on_commit_callbacks(execute=True):
        second = _checkpoint(timezone.now() + LATER)

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines == [
        signing.checkpoint_as_json(checkpoint_dict(first)),
        signing.checkpoint_as_json(checkpoint_dict(second)),
    ]
    assert [line["number"] for line in lines] == [1, 2]


def test_an_unwritable_checkpoint_file_is_logged_and_the_checkpoint_kept(
    chain_of, signing_key, settings, tmp_path, caplog, django_capture_on_commit_callbacks
):
    settings.PIM_AUDIT_CHECKPOINT_FILE = str(tmp_path / "no-such-folder" / "audit-checkpoints.jsonl")
    chain_of(1)

    with caplog.at_level(logging.ERROR, logger="audit.checkpoints"):
        with django_capture_on_commit_callbacks(execute=True):
            checkpoint = _checkpoint()

    assert AuditCheckpoint.objects.get() == checkpoint
    assert f"Audit checkpoint {checkpoint.pk} not appended to PIM_AUDIT_CHECKPOINT_FILE" in caplog.text


def test_a_checkpoint_file_named_on_the_command_line_must_be_readable(chain_of, tmp_path):
    chain_of(1)

    with pytest.raises(CommandError, match="Cannot read the checkpoint file"):
        _verify("--checkpoint-file", str(tmp_path / "missing.jsonl"))


def test_a_configured_checkpoint_file_not_written_yet_is_no_failure(chain_of, settings, tmp_path):
    settings.PIM_AUDIT_CHECKPOINT_FILE = str(tmp_path / "not-yet.jsonl")
    chain_of(1)

    assert _verify().startswith("OK: 1 events")


def test_the_checkpoint_command_signs_now(chain_of, signing_key):
    chain_of(3)
    _checkpoint()
    out = StringIO()

    call_command("audit_checkpoint", stdout=out)

    assert AuditCheckpoint.objects.count() == 2
    assert "#3" in out.getvalue()


# --- Append-only ---------------------------------------------------------------------------


def test_checkpoints_cannot_be_edited_or_deleted_through_the_orm(signing_key):
    checkpoint = _checkpoint()

    checkpoint.seq = 99
    with pytest.raises(AppendOnlyError):
        checkpoint.save()
    with pytest.raises(AppendOnlyError):
        checkpoint.delete()
    with pytest.raises(AppendOnlyError):
        AuditCheckpoint.objects.update(seq=99)
    with pytest.raises(AppendOnlyError):
        AuditCheckpoint.objects.all().delete()
    assert AuditCheckpoint.objects.get().seq == 0


@pytest.mark.postgres
def test_the_database_refuses_to_change_checkpoints(signing_key):
    _checkpoint()
    for statement in ("UPDATE audit_auditcheckpoint SET seq = 5", "DELETE FROM audit_auditcheckpoint"):
        with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute(statement)
    assert AuditCheckpoint.objects.get().seq == 0


# --- audit_verify against the checkpoints -------------------------------------------------


def test_audit_verify_reports_the_checkpoints_and_their_good_signatures(chain_of, signing_key):
    events = chain_of(5)
    _checkpoint()
    checkpoint = _checkpoint(timezone.now() + LATER)

    lines = _verify().splitlines()

    assert lines[0] == f"OK: 5 events, head #5 {events[-1].hash}"
    assert lines[1] == "OK: 5 event MACs good, every event from #1 on; the chain head's MAC good"
    assert lines[2].startswith(f"OK: 2 checkpoints reached by the chain; the latest, {checkpoint.pk} of ")
    assert lines[2].endswith("signs #5; 2 signatures good")


def test_deleting_the_last_events_after_a_checkpoint_is_caught(chain_of, signing_key, tamper):
    events = chain_of(6)
    checkpoint = _checkpoint()
    tamper.delete(5, 6)
    # A careful intruder also moves the chain head back, so the head check alone passes.
    AuditChainHead.objects.filter(pk=1).update(last_seq=4, last_hash=events[3].hash)

    result = audit_chain_verify()

    assert (result.problem.fault, result.problem.seq) == (Fault.HEAD_MISMATCH, 5)
    assert f"checkpoint {checkpoint.pk}" in result.problem.detail
    assert "#5 to #6 missing" in result.problem.detail
    with pytest.raises(CommandError, match=r"event #5: chain head mismatch \(truncated tail\): checkpoint"):
        _verify()


def test_a_tail_rewritten_after_a_checkpoint_is_caught(chain_of, signing_key, tamper):
    events = chain_of(4)
    _checkpoint()
    tamper.delete(4)
    AuditChainHead.objects.filter(pk=1).update(last_seq=3, last_hash=events[2].hash)
    audit_record(action="test.replacement")  # a new #4, properly chained to #3

    problem = audit_chain_verify().problem

    assert (problem.fault, problem.seq) == (Fault.HEAD_MISMATCH, 4)
    assert "records hash" in problem.detail


def test_a_checkpoint_signed_with_another_key_is_caught(chain_of, signing_key):
    chain_of(3)
    trusted = verification_keys()
    _checkpoint()
    signing_key_of_intruder = Ed25519PrivateKey.generate()
    fields = {
        "number": 2,
        "seq": 3,
        "hash": AuditEvent.objects.get(seq=3).hash,
        "created_at": timezone.now() + LATER,
        "previous_id": AuditCheckpoint.objects.get().pk,
        "previous_digest": signing.checkpoint_digest(checkpoint_dict(AuditCheckpoint.objects.get())),
        "key_id": signing.key_id(signing_key_of_intruder.public_key()),
        "keyed_from": 1,
    }
    forged = AuditCheckpoint.objects.create(
        **fields, signature=signing.checkpoint_sign(fields, signing_key_of_intruder)
    )

    problem = audit_chain_verify(keys=trusted).problem

    assert (problem.id, str(problem)) == (forged.pk, f"checkpoint {forged.pk} (at #3): {problem.detail}")
    assert "not a trusted key" in problem.detail


def test_an_altered_checkpoint_fails_its_signature(chain_of, signing_key, checkpoint_tamper):
    chain_of(3)
    checkpoint = _checkpoint()
    checkpoint_tamper.sql("UPDATE audit_auditcheckpoint SET seq = 2 WHERE id = %s", [checkpoint.pk])

    problem = audit_chain_verify(keys=verification_keys()).problem

    assert problem.id == checkpoint.pk
    assert "bad signature" in problem.detail
    with pytest.raises(CommandError, match=rf"checkpoint {checkpoint.pk} \(at #2\): bad signature"):
        _verify()


def test_a_deleted_checkpoint_breaks_the_chain_of_checkpoints(chain_of, signing_key, checkpoint_tamper):
    chain_of(2)
    now = timezone.now()
    first, second, third = _checkpoint(now), _checkpoint(now + LATER), _checkpoint(now + 2 * LATER)
    checkpoint_tamper.sql("DELETE FROM audit_auditcheckpoint WHERE id = %s", [second.pk])

    problem = audit_chain_verify(keys=verification_keys()).problem

    assert problem.id == third.pk
    assert f"names checkpoint {second.pk} before it, not {first.pk}" in problem.detail


def test_without_a_public_key_the_signatures_are_said_to_be_unchecked(chain_of, signing_key, settings):
    chain_of(2)
    _checkpoint()
    settings.PIM_AUDIT_SIGNING_KEY = ""  # a web node: no key at all
    settings.DEBUG = False

    output = _verify()

    assert "signatures NOT checked: no public key" in output


def test_a_configured_public_key_checks_the_signatures_without_the_private_key(
    chain_of, signing_key, public_key_text, settings
):
    chain_of(2)
    _checkpoint()
    settings.PIM_AUDIT_SIGNING_KEY = ""
    settings.PIM_AUDIT_PUBLIC_KEY = public_key_text
    settings.DEBUG = False

    assert _verify().rstrip().endswith("1 signature good")
    assert _verify("--public-key", public_key_text).rstrip().endswith("1 signature good")


def test_the_wrong_public_key_on_the_command_line_fails(chain_of, signing_key):
    chain_of(2)
    _checkpoint()
    other = signing.public_key_text(Ed25519PrivateKey.generate().public_key())

    with pytest.raises(CommandError, match="not a trusted key"):
        _verify("--public-key", other)


# --- Keys and checks -----------------------------------------------------------------------


def test_audit_keygen_prints_a_working_key_pair(settings):
    out = StringIO()
    call_command("audit_keygen", stdout=out)
    values = dict(line.split("=", 1) for line in out.getvalue().splitlines() if line.startswith("PIM_"))

    private = signing.load_private_key(values["PIM_AUDIT_SIGNING_KEY"])
    public = signing.load_public_key(values["PIM_AUDIT_PUBLIC_KEY"])
    assert signing.key_id(private.public_key()) == signing.key_id(public)
    assert "-----BEGIN PUBLIC KEY-----" in out.getvalue()
    [chain_key] = chain_keys.parse(values["PIM_AUDIT_CHAIN_KEY"])
    assert len(chain_key.secret) >= chain_keys.MIN_LENGTH


def test_audit_keygen_shows_the_public_half_of_the_configured_key(signing_key, public_key_text):
    out = StringIO()

    call_command("audit_keygen", "--configured", stdout=out)

    assert f"PIM_AUDIT_PUBLIC_KEY={public_key_text}" in out.getvalue()


def test_several_public_keys_are_read_for_key_rotation():
    keys = [Ed25519PrivateKey.generate().public_key() for _ in range(2)]
    as_base64 = ", ".join(signing.public_key_text(key) for key in keys)
    as_pem = "\n".join(signing.public_key_pem(key) for key in keys)

    for text in (as_base64, as_pem):
        assert set(signing.keyring(signing.load_public_keys(text))) == {signing.key_id(key) for key in keys}


@pytest.mark.parametrize(
    "text",
    ["not a key!", base64.b64encode(b"secret-but-short").decode(), "-----BEGIN PRIVATE KEY-----\nAAAA"],
)
def test_an_unreadable_key_is_refused_without_repeating_it(text):
    with pytest.raises(signing.BadKeyError) as error:
        signing.load_private_key(text)

    assert text not in str(error.value)


def _audit_messages():
    return [message for message in checks.run_checks() if message.id and message.id.startswith("audit.")]


def test_the_system_check_informs_when_no_signing_key_is_set_in_production(settings):
    settings.PIM_AUDIT_SIGNING_KEY = ""
    settings.DEBUG = False

    messages = _audit_messages()

    assert [(message.id, message.level) for message in messages] == [("audit.I001", checks.INFO)]


def test_the_system_check_is_silent_with_a_key(signing_key, settings):
    settings.DEBUG = False

    assert _audit_messages() == []


def test_the_system_check_refuses_an_unreadable_key(settings):
    settings.PIM_AUDIT_SIGNING_KEY = "c2VjcmV0LWJ1dC1ub3QtYS1rZXk="
    settings.PIM_AUDIT_PUBLIC_KEY = "also wrong"

    messages = _audit_messages()

    assert [message.id for message in messages] == ["audit.E001", "audit.E001"]
    assert all("c2VjcmV0" not in message.msg for message in messages)


def _deploy_messages(check_id: str):
    messages = checks.run_checks(include_deployment_checks=True, tags=[checks.Tags.security])
    return [message for message in messages if message.id == check_id]


def test_the_deploy_check_fails_without_a_chain_key(settings):
    settings.PIM_AUDIT_CHAIN_KEY = ""

    [error] = _deploy_messages("audit.E002")

    assert error.level == checks.ERROR
    assert "cannot write audit events" in error.msg


def test_the_deploy_check_is_silent_with_a_chain_key(settings):
    settings.PIM_AUDIT_CHAIN_KEY = "k" * 40

    assert _deploy_messages("audit.E002") == []


def test_a_chain_key_too_short_to_be_a_secret_is_refused_without_repeating_it(settings):
    settings.PIM_AUDIT_CHAIN_KEY = "short-secret"

    [error] = [message for message in _audit_messages() if message.id == "audit.E001"]

    assert "PIM_AUDIT_CHAIN_KEY cannot be read: a chain key must be at least 32 characters" in error.msg
    assert "short-secret" not in error.msg


def test_development_gets_a_chain_key_derived_from_the_development_secret(settings):
    # tests.settings runs with DJANGO_DEBUG=1 and no PIM_AUDIT_CHAIN_KEY in the environment.
    derived = hashlib.sha256(b"PIM Portal development audit chain key\n" + settings.SECRET_KEY.encode())

    assert settings.PIM_AUDIT_CHAIN_KEY == derived.hexdigest()


def test_development_gets_a_stable_key_derived_from_the_development_secret(settings):
    settings.PIM_AUDIT_SIGNING_KEY = ""
    settings.DEBUG = True
    from audit.checkpoints import signing_key as configured

    assert signing.key_id(configured().public_key()) == signing.key_id(configured().public_key())


def test_run_periodic_writes_the_checkpoint_last(chain_of, signing_key):
    chain_of(2)
    out = StringIO()

    call_command("run_periodic", stdout=out)
    call_command("run_periodic", stdout=out)  # a minute later, from cron: nothing more to sign

    lines = out.getvalue().splitlines()
    assert lines.count("audit checkpoints written: 1") == 1
    assert lines[-1] == "audit checkpoints written: 0"
    assert AuditCheckpoint.objects.get().seq == AuditChainHead.objects.get().last_seq


def test_the_public_key_may_be_pem_text_or_a_file_for_the_database_check_too(chain_of, signing_key, tmp_path):
    chain_of(2)
    _checkpoint()
    pem = signing.public_key_pem(signing_key.public_key())
    key_file = tmp_path / "audit.pub"
    key_file.write_text(pem)

    assert _verify("--public-key", pem).rstrip().endswith("1 signature good")
    assert _verify("--public-key", str(key_file)).rstrip().endswith("1 signature good")


def test_each_committed_checkpoint_is_sent_to_syslog(
    chain_of, signing_key, settings, django_capture_on_commit_callbacks
):
    """A UDP syslog receiver on loopback gets the same JSON line as the file, tagged."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.settimeout(5)
        settings.PIM_AUDIT_CHECKPOINT_SYSLOG = f"127.0.0.1:{receiver.getsockname()[1]}"
        chain_of(1)

        with django_capture_on_commit_callbacks(execute=True):
            checkpoint = _checkpoint()
        datagram = receiver.recv(65536).decode()

    # <priority>: authpriv (10) * 8 + info (6) = 86.
    assert datagram.startswith("<86>pim-audit-checkpoint: ")
    line = datagram.split(": ", 1)[1].rstrip("\x00")
    assert json.loads(line) == signing.checkpoint_as_json(checkpoint_dict(checkpoint))


def test_an_unreachable_syslog_socket_is_logged_and_the_checkpoint_kept(
    chain_of, signing_key, settings, tmp_path, caplog, django_capture_on_commit_callbacks
):
    settings.PIM_AUDIT_CHECKPOINT_SYSLOG = str(tmp_path / "no-such-socket")
    chain_of(1)

    with caplog.at_level(logging.ERROR, logger="audit.checkpoints"):
        with django_capture_on_commit_callbacks(execute=True):
            checkpoint = _checkpoint()

    assert AuditCheckpoint.objects.get() == checkpoint
    assert f"Audit checkpoint {checkpoint.pk} not sent to PIM_AUDIT_CHECKPOINT_SYSLOG" in caplog.text
