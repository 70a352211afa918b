"""The offline verifier: an export checked with nothing but the public key, no database."""

import json
import os
import subprocess  # noqa: S404 - runs this repository's own module
import sys
from io import StringIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.conf import settings
from django.core.management import CommandError, call_command
from django.urls import reverse

from audit import chain, signing
from audit.checkpoints import audit_checkpoint_write
from audit.offline_verify import main, read_keys, verify_export
from audit.services import audit_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def exporter(verified_client, auditor, tmp_path):
    """exporter(**filter) -> the path of a JSON Lines export made through the web page."""
    client = verified_client(auditor)

    def export(**params) -> Path:
        response = client.get(reverse("audit:export"), {**params, "format": "jsonl"})
        assert response.status_code == 200
        path = tmp_path / f"export-{len(list(tmp_path.iterdir()))}.jsonl"
        path.write_bytes(b"".join(response.streaming_content))
        return path

    return export


@pytest.fixture
def signed_log(exporter, chain_of, signing_key):
    """Six events, a checkpoint, two more events: returns the checkpoint."""
    exporter  # sign the auditor in first: their events come before ours  # noqa: B018
    chain_of(6)
    checkpoint = audit_checkpoint_write()
    audit_record(action="test.event", details={"n": 7})
    audit_record(action="test.event", details={"n": 8})
    return checkpoint


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _write(path: Path, lines: list[dict]) -> Path:
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    return path


def _offline(path: Path, public_key: str, django_db_blocker) -> str:
    """manage.py audit_verify --export, with every database access refused."""
    out = StringIO()
    with django_db_blocker.block():
        call_command("audit_verify", "--export", str(path), "--public-key", public_key, stdout=out)
    return out.getvalue()


def test_an_intact_export_passes_without_the_database(
    exporter, signed_log, public_key_text, django_db_blocker
):
    path = exporter()
    lines = _lines(path)

    output = _offline(path, public_key_text, django_db_blocker)

    events = [line for line in lines if line["type"] == "event"]
    assert [line["type"] for line in lines[len(events) :]] == ["checkpoint"]
    assert output.startswith(f"OK: {len(events)} events (#1 to #{events[-1]['seq']}) in an unbroken chain; ")
    assert f"checkpoint {signed_log.pk} of " in output
    assert f"covers them up to #{signed_log.seq}" in output
    assert "the 2 events after it are chained but not yet signed" in output


def test_the_standalone_script_needs_no_django_settings(exporter, signed_log, public_key_text, tmp_path):
    path = exporter()
    key_file = tmp_path / "audit.pub"
    key_file.write_text(signing.public_key_pem(signing.load_public_key(public_key_text)))
    env = {name: value for name, value in os.environ.items() if not name.startswith(("DJANGO", "DATABASE"))}

    completed = subprocess.run(  # noqa: S603 - fixed arguments
        [sys.executable, "-m", "audit.offline_verify", str(path), "--public-key", str(key_file)],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert completed.stdout.startswith("OK: ")


def test_a_range_that_starts_after_the_first_event_verifies_too(exporter, signed_log, public_key_text):
    path = exporter(action="test.event")  # contiguous: the events after signing the auditor in

    result = verify_export(path, read_keys([public_key_text]))

    assert result.ok, result.problem
    assert result.first_seq > 1


def test_an_edited_export_fails(exporter, signed_log, public_key_text):
    path = exporter()
    lines = _lines(path)
    victim = next(line for line in lines if line.get("details") == {"n": 3})
    victim["details"], victim["details_text"] = {"n": 300}, '{"n":300}'

    result = verify_export(_write(path, lines), read_keys([public_key_text]))

    assert result.problem == f"event #{victim['seq']}: edited: content does not match its hash"
    with pytest.raises(CommandError, match=rf"FAILED: event #{victim['seq']}: edited"):
        call_command("audit_verify", "--export", str(path), "--public-key", public_key_text)


def test_an_export_edited_and_rehashed_to_the_end_fails_at_the_signed_checkpoint(
    exporter, signed_log, public_key_text
):
    path = exporter()
    lines = _lines(path)
    events = [line for line in lines if line["type"] == "event"]
    for index, line in enumerate(events):
        if line.get("details") == {"n": 3}:
            line["details"], line["details_text"] = {"n": 300}, '{"n":300}'
        if index:
            line["prev_hash"] = events[index - 1]["hash"]
        line["hash"] = chain.event_hash(line["prev_hash"], line)

    result = verify_export(_write(path, lines), read_keys([public_key_text]))

    assert result.problem.startswith(f"event #{signed_log.seq}: checkpoint {signed_log.pk}")
    assert "records hash" in result.problem


def test_a_checkpoint_edited_to_match_a_rewritten_export_fails_its_signature(
    exporter, signed_log, public_key_text
):
    path = exporter()
    lines = _lines(path)
    lines[-1]["hash"] = "f" * 64

    result = verify_export(_write(path, lines), read_keys([public_key_text]))

    assert (
        result.problem
        == f"checkpoint {signed_log.pk} (at #{signed_log.seq}): bad signature: not what the key holder signed"
    )


def test_an_export_cut_short_of_its_checkpoint_fails(exporter, signed_log, public_key_text):
    path = exporter()
    lines = [line for line in _lines(path) if line["type"] == "checkpoint" or line["seq"] < signed_log.seq]

    result = verify_export(_write(path, lines), read_keys([public_key_text]))

    assert result.problem == (
        f"event #{signed_log.seq}: checkpoint {signed_log.pk} of {lines[-1]['created_at']} is at "
        f"#{signed_log.seq} but the last event is #{signed_log.seq - 1}: #{signed_log.seq} missing"
    )


def test_an_export_missing_an_event_in_the_middle_fails(exporter, signed_log, public_key_text):
    path = exporter()
    lines = _lines(path)
    del lines[2]

    result = verify_export(_write(path, lines), read_keys([public_key_text]))

    assert result.problem.startswith("event #4: deleted before: #3 missing before this event")


def test_the_wrong_public_key_fails(exporter, signed_log, django_db_blocker):
    path = exporter()
    other = signing.public_key_text(Ed25519PrivateKey.generate().public_key())

    with pytest.raises(CommandError, match="not a trusted key"):
        _offline(path, other, django_db_blocker)
    assert main([str(path), "--public-key", other]) == 1


def test_a_filtered_export_with_gaps_cannot_be_verified_and_says_why(exporter, signed_log, public_key_text):
    audit_record(action="test.other")
    audit_record(action="test.event", details={"n": 9})
    path = exporter(action="test.event")

    result = verify_export(path, read_keys([public_key_text]))

    assert (
        "deleted before" in result.problem and "export the whole log, or a time range only" in result.problem
    )


def test_an_export_without_a_checkpoint_proves_nothing(exporter, chain_of, public_key_text):
    chain_of(3)
    path = exporter()

    result = verify_export(path, read_keys([public_key_text]))

    assert result.problem.startswith("the export holds no signed checkpoint")


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json at all", "line 1: not JSON"),
        ("[1, 2]", "line 1: not a JSON object"),
        ('{"type": "mystery"}', "line 1: unknown type 'mystery'"),
        ('{"type": "event", "seq": 1}', "line 1: event without prev_hash, hash, occurred_at"),
        ('{"type": "checkpoint", "seq": 1}', "line 1: checkpoint without id, hash, created_at"),
    ],
)
def test_a_file_that_is_not_an_export_is_refused_clearly(tmp_path, public_key_text, line, problem):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")

    result = verify_export(path, read_keys([public_key_text]))

    assert result.problem.startswith(problem)


def test_a_missing_file_is_reported_not_raised(tmp_path, public_key_text):
    result = verify_export(tmp_path / "nope.jsonl", read_keys([public_key_text]))

    assert result.problem.startswith("cannot read the export")


def test_the_command_needs_a_public_key_for_an_export(tmp_path):
    with pytest.raises(CommandError, match="--export needs --public-key"):
        call_command("audit_verify", "--export", str(tmp_path / "x.jsonl"))
