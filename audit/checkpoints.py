"""Signed checkpoints of the audit chain head (SPEC 2.6): writing them, and the keys.

The job signs the chain head every 15 minutes, also when nothing happened, so a log whose
last events were deleted no longer reaches what a checkpoint signed (audit_verify), and an
export can be verified with nothing but the public key (audit.offline_verify). Checkpoints
are numbered 1, 2, 3, … and the chain head records the newest number under its MAC; with
PIM_AUDIT_CHECKPOINT_FILE set, each one is also appended to that file once committed, out of
the database's reach, for audit_verify to compare with.
"""

import errno
import hashlib
import json
import logging
import os
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from . import chain_keys, signing
from .models import AuditCheckpoint
from .services import chain_head_save, lock_chain_head

logger = logging.getLogger(__name__)

# Beat runs the job every 15 minutes; cron users may run run_periodic more often. A checkpoint
# younger than this is recent enough, so running the job twice (or every minute) writes one.
MIN_INTERVAL = timedelta(minutes=14)
BATCH_SIZE = 5000


def signing_key() -> Ed25519PrivateKey | None:
    """The configured private key; in development (DEBUG) without one, a key derived from the
    development SECRET_KEY, so `make run` writes checkpoints out of the box."""
    if settings.PIM_AUDIT_SIGNING_KEY:
        return signing.load_private_key(settings.PIM_AUDIT_SIGNING_KEY)
    if settings.DEBUG:
        seed = hashlib.sha256(b"PIM Portal development audit key\n" + settings.SECRET_KEY.encode()).digest()
        return Ed25519PrivateKey.from_private_bytes(seed)
    return None


def verification_keys() -> dict[str, Ed25519PublicKey] | None:
    """The configured public keys by key id: PIM_AUDIT_PUBLIC_KEY and the public half of the
    signing key this process has. None: nothing to check signatures with."""
    keys = signing.load_public_keys(settings.PIM_AUDIT_PUBLIC_KEY) if settings.PIM_AUDIT_PUBLIC_KEY else []
    private = signing_key()
    if private is not None:
        keys.append(private.public_key())
    return signing.keyring(keys) or None


def audit_checkpoint_write(
    *, now: datetime | None = None, min_interval: timedelta = MIN_INTERVAL
) -> AuditCheckpoint | None:
    """Sign the chain head as it stands now; None when no key is configured (logged) or the
    last checkpoint is younger than min_interval."""
    key = signing_key()
    if key is None:
        logger.warning("Audit checkpoint not written: PIM_AUDIT_SIGNING_KEY is not set for this process.")
        return None
    chain_key = chain_keys.current()  # the head records the new number under its MAC
    now = now or timezone.now()
    with transaction.atomic():
        # Holding the head serialises checkpoint writers too (one successor per checkpoint).
        head = lock_chain_head()
        previous = AuditCheckpoint.objects.order_by("-id").first()
        if previous is not None and previous.created_at > now - min_interval:
            return None
        number = _next_number(previous)
        fields: dict[str, Any] = {
            "number": number,
            "seq": head.last_seq,
            "hash": head.last_hash,
            "created_at": now,
            "previous_id": previous.pk if previous else None,
            "previous_digest": signing.checkpoint_digest(checkpoint_dict(previous)) if previous else "",
            "key_id": signing.key_id(key.public_key()),
            "keyed_from": head.keyed_from,
        }
        checkpoint = AuditCheckpoint.objects.create(**fields, signature=signing.checkpoint_sign(fields, key))
        head.checkpoints = number
        chain_head_save(head, key=chain_key)
        transaction.on_commit(partial(checkpoint_file_append, checkpoint))
        transaction.on_commit(partial(checkpoint_syslog_send, checkpoint))
    return checkpoint


def _next_number(previous: AuditCheckpoint | None) -> int:
    if previous is None:
        return 1
    if previous.number is not None:
        return previous.number + 1
    # The first numbered one after checkpoints written before numbering: its place in line.
    return AuditCheckpoint.objects.count() + 1


def checkpoint_dict(checkpoint: AuditCheckpoint) -> dict:
    return {name: getattr(checkpoint, name) for name in signing.CHECKPOINT_FIELDS}


def checkpoint_file_append(checkpoint: AuditCheckpoint) -> None:
    """Append the committed checkpoint to PIM_AUDIT_CHECKPOINT_FILE (if set) as one JSON
    line, synced to disk. A failure is logged, not raised: the checkpoint is in the database,
    and the file may lack some (audit_verify only requires what it holds to be there)."""
    path = settings.PIM_AUDIT_CHECKPOINT_FILE
    if not path:
        return
    line = json.dumps(signing.checkpoint_as_json(checkpoint_dict(checkpoint)), separators=(",", ":"))
    try:
        with Path(path).open("a", encoding="ascii") as file:
            file.write(line + "\n")
            file.flush()
            os.fsync(file.fileno())
    except OSError as error:
        logger.error(
            "Audit checkpoint %s not appended to PIM_AUDIT_CHECKPOINT_FILE: %s", checkpoint.pk, error
        )


SYSLOG_TAG = "pim-audit-checkpoint"
SYSLOG_PRIORITY = 10 * 8 + 6  # facility authpriv, severity info (RFC 3164)


def checkpoint_syslog_send(checkpoint: AuditCheckpoint) -> None:
    """Send the committed checkpoint to PIM_AUDIT_CHECKPOINT_SYSLOG (if set), as the same JSON
    line as the file, tagged pim-audit-checkpoint, facility authpriv: a syslog server (or the
    local journal, which forwards it) keeps it out of the database's reach. A failure is logged,
    not raised, as for the file."""
    address = settings.PIM_AUDIT_CHECKPOINT_SYSLOG
    if not address:
        return
    line = json.dumps(signing.checkpoint_as_json(checkpoint_dict(checkpoint)), separators=(",", ":"))
    message = f"<{SYSLOG_PRIORITY}>{SYSLOG_TAG}: {line}".encode("ascii")
    target = syslog_address(address)
    try:
        if isinstance(target, str):  # a local socket: datagrams, else a stream (as the logging module)
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                    sock.connect(target)
                    sock.send(message)
            except OSError as error:
                if error.errno != errno.EPROTOTYPE:
                    raise
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.connect(target)
                    sock.sendall(message + b"\0")
        else:
            with socket.socket(
                socket.AF_INET6 if ":" in target[0] else socket.AF_INET, socket.SOCK_DGRAM
            ) as sock:
                sock.sendto(message, target)
    except OSError as error:
        logger.error("Audit checkpoint %s not sent to PIM_AUDIT_CHECKPOINT_SYSLOG: %s", checkpoint.pk, error)


def syslog_address(value: str) -> str | tuple[str, int]:
    """ "/dev/log" (a local socket) or "host:port" (UDP)."""
    if value.startswith("/"):
        return value
    host, _, port = value.rpartition(":")
    return (host.strip("[]"), int(port))


def iter_checkpoints(
    *, min_seq: int = 0, max_seq: int | None = None, batch_size: int = BATCH_SIZE
) -> Iterator[dict]:
    """Checkpoints as dicts in id order (keyset batches), optionally only those signing a seq
    in [min_seq, max_seq]."""
    queryset = AuditCheckpoint.objects.filter(seq__gte=min_seq)
    if max_seq is not None:
        queryset = queryset.filter(seq__lte=max_seq)
    after = 0
    while True:
        rows = list(
            queryset.filter(id__gt=after).order_by("id").values(*signing.CHECKPOINT_FIELDS)[:batch_size]
        )
        yield from rows
        if len(rows) < batch_size:
            return
        after = rows[-1]["id"]
