"""Ed25519 keys and signed checkpoints, as pure functions over plain dicts (no Django).

A checkpoint dict holds ``number``, ``seq``, ``hash``, ``created_at`` (a datetime, or the
string ``chain.format_timestamp`` writes), ``previous_id``, ``previous_digest``, ``key_id``,
``keyed_from``, ``signature`` and, optionally, ``id``. The signed message is a fixed prefix
and the canonical JSON of everything but the signature and the checkpoint's own id (the
database assigns that after signing). Checkpoints written before numbering (``number`` None)
were signed in the v1 format, without ``number`` and ``keyed_from``. The offline verifier and
``manage.py audit_verify`` both use ``CheckpointChecker``.

Keys are written as base64 of the 32 raw bytes (one line, fits an environment variable) and
read from that or from PEM (PKCS#8 private keys, SubjectPublicKeyInfo public keys).
"""

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from . import chain

MESSAGE_PREFIX_V1 = b"PIM Portal audit checkpoint v1\n"
SIGNED_FIELDS_V1 = ("seq", "hash", "created_at", "previous_id", "previous_digest", "key_id")
MESSAGE_PREFIX = b"PIM Portal audit checkpoint v2\n"
SIGNED_FIELDS = ("number", *SIGNED_FIELDS_V1, "keyed_from")
CHECKPOINT_FIELDS = ("id", *SIGNED_FIELDS, "signature")
# Fields an export written before numbering does not carry (read as None).
OPTIONAL_FIELDS = ("number", "keyed_from")
_PEM_BLOCK = re.compile(r"-----BEGIN [A-Z ]+-----.+?-----END [A-Z ]+-----", re.DOTALL)


class BadKeyError(ValueError):
    """A key that cannot be read (the message never repeats the key itself)."""


# --- Keys ----------------------------------------------------------------------------------


def load_private_key(text: str) -> Ed25519PrivateKey:
    """A private key from PEM or from base64 of its 32 raw bytes."""
    text = _unescape(text)
    if "-----BEGIN" in text:
        try:
            key = serialization.load_pem_private_key(text.encode("ascii"), password=None)
        except (ValueError, TypeError, UnicodeEncodeError, UnsupportedAlgorithm):
            raise BadKeyError("not a readable, unencrypted PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise BadKeyError("the PEM private key is not an Ed25519 key")
        return key
    return Ed25519PrivateKey.from_private_bytes(_raw_32(text, "private"))


def load_public_key(text: str) -> Ed25519PublicKey:
    """A public key from PEM or from base64 of its 32 raw bytes."""
    text = _unescape(text)
    if "-----BEGIN" in text:
        try:
            key = serialization.load_pem_public_key(text.encode("ascii"))
        except (ValueError, TypeError, UnicodeEncodeError, UnsupportedAlgorithm):
            raise BadKeyError("not a readable PEM public key") from None
        if not isinstance(key, Ed25519PublicKey):
            raise BadKeyError("the PEM public key is not an Ed25519 key")
        return key
    return Ed25519PublicKey.from_public_bytes(_raw_32(text, "public"))


def load_public_keys(text: str) -> list[Ed25519PublicKey]:
    """One or more public keys: PEM blocks, or base64 keys separated by commas or spaces
    (several keys let old checkpoints verify after the signing key was rotated)."""
    text = _unescape(text)
    parts = _PEM_BLOCK.findall(text) if "-----BEGIN" in text else re.split(r"[\s,]+", text.strip())
    return [load_public_key(part) for part in parts if part]


def public_key_text(key: Ed25519PublicKey) -> str:
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return base64.b64encode(raw).decode("ascii")


def private_key_text(key: Ed25519PrivateKey) -> str:
    raw = key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )
    return base64.b64encode(raw).decode("ascii")


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode("ascii")


def key_id(key: Ed25519PublicKey) -> str:
    """A short, stable name for a public key: the first 16 hex digits of its SHA-256."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def keyring(keys: Iterable[Ed25519PublicKey]) -> dict[str, Ed25519PublicKey]:
    return {key_id(key): key for key in keys}


def _unescape(text: str) -> str:
    # A PEM pasted into a one-line environment variable often arrives with literal "\n".
    return text.replace("\\n", "\n").strip()


def _raw_32(text: str, kind: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadKeyError(f"the {kind} key is neither PEM nor base64") from None
    if len(raw) != 32:
        raise BadKeyError(f"a raw Ed25519 {kind} key has 32 bytes, this one has {len(raw)}")
    return raw


# --- Checkpoints ---------------------------------------------------------------------------


def checkpoint_message(checkpoint: Mapping) -> bytes:
    numbered = checkpoint.get("number") is not None
    prefix, names = (MESSAGE_PREFIX, SIGNED_FIELDS) if numbered else (MESSAGE_PREFIX_V1, SIGNED_FIELDS_V1)
    content = {name: checkpoint.get(name) for name in names}
    if isinstance(content["created_at"], datetime):
        content["created_at"] = chain.format_timestamp(content["created_at"])
    body = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return prefix + body.encode("ascii")


def checkpoint_digest(checkpoint: Mapping) -> str:
    """What the next checkpoint records as previous_digest."""
    return hashlib.sha256(checkpoint_message(checkpoint)).hexdigest()


def checkpoint_sign(checkpoint: Mapping, key: Ed25519PrivateKey) -> str:
    return base64.b64encode(key.sign(checkpoint_message(checkpoint))).decode("ascii")


def checkpoint_as_json(checkpoint: Mapping) -> dict:
    """A checkpoint as an export line carries it."""
    data = {"type": "checkpoint", **{name: checkpoint.get(name) for name in CHECKPOINT_FIELDS}}
    if isinstance(data["created_at"], datetime):
        data["created_at"] = chain.format_timestamp(data["created_at"])
    return data


@dataclass(frozen=True)
class CheckpointProblem:
    """A checkpoint that is not what the key holder signed, or whose chain of checkpoints
    broke, or that is missing (then id and seq may be unknown: None)."""

    id: int | None
    seq: int | None
    detail: str

    def __str__(self):
        if self.id is None and self.seq is None:
            return self.detail  # a missing checkpoint: the detail names it
        name = f"checkpoint {self.id}" if self.id is not None else "a checkpoint"
        return name + (f" (at #{self.seq})" if self.seq is not None else "") + f": {self.detail}"


class CheckpointChecker:
    """Feeds checkpoints in id order: each must link to the one before it, carry the next
    number, never step back in the chain, and (when keys are given) carry a good signature by
    one of them.

    ``from_start``: the first checkpoint fed must be the very first one written (no
    predecessor), true for the database and false for an export, which carries only the
    checkpoints inside its range.
    """

    def __init__(self, *, keys: Mapping[str, Ed25519PublicKey] | None, from_start: bool):
        self.keys = keys
        self.from_start = from_start
        self.count = 0
        self.signed = 0
        self.previous: Mapping | None = None
        self.problem: CheckpointProblem | None = None

    def walk(self, checkpoints: Iterable[Mapping]) -> CheckpointProblem | None:
        for checkpoint in checkpoints:
            if not self.feed(checkpoint):
                break
        return self.problem

    def feed(self, checkpoint: Mapping) -> bool:
        if self.problem is not None:
            return False
        self.problem = (
            self._link_problem(checkpoint)
            or self._number_problem(checkpoint)
            or self._signature_problem(checkpoint)
        )
        if self.problem is not None:
            return False
        self.count += 1
        self.previous = checkpoint
        return True

    def _link_problem(self, checkpoint: Mapping) -> CheckpointProblem | None:
        cid, seq, previous = checkpoint.get("id"), checkpoint["seq"], self.previous
        if previous is None:
            if self.from_start and checkpoint["previous_id"] is not None:
                detail = f"names checkpoint {checkpoint['previous_id']} before it, which is missing"
                return CheckpointProblem(cid, seq, detail)
            return None
        if checkpoint["previous_id"] != previous.get("id"):
            detail = f"names checkpoint {checkpoint['previous_id']} before it, not {previous.get('id')}"
            return CheckpointProblem(cid, seq, f"{detail}: a checkpoint between them is missing")
        if checkpoint["previous_digest"] != checkpoint_digest(previous):
            return CheckpointProblem(cid, seq, f"checkpoint {previous.get('id')} before it was altered")
        if seq < previous["seq"] or (seq == previous["seq"] and checkpoint["hash"] != previous["hash"]):
            return CheckpointProblem(cid, seq, f"steps back from #{previous['seq']}: the chain was rewritten")
        return None

    def _number_problem(self, checkpoint: Mapping) -> CheckpointProblem | None:
        """Numbers go 1, 2, 3, …; checkpoints from before numbering have none, and come first."""
        number, previous = checkpoint.get("number"), self.previous
        previous_number = previous.get("number") if previous is not None else None
        if number is None:
            if previous_number is None:
                return None
            detail = f"has no number after checkpoint number {previous_number}"
            return CheckpointProblem(checkpoint.get("id"), checkpoint["seq"], detail)
        if previous_number is not None:
            expected = previous_number + 1
        elif self.from_start:
            expected = self.count + 1
        else:
            return None  # the first numbered one of an export's range
        if number == expected:
            return None
        detail = f"is number {number}, not {expected}: the numbering has a gap or a repeat"
        return CheckpointProblem(checkpoint.get("id"), checkpoint["seq"], detail)

    def _signature_problem(self, checkpoint: Mapping) -> CheckpointProblem | None:
        if self.keys is None:
            return None
        cid, seq = checkpoint.get("id"), checkpoint["seq"]
        key = self.keys.get(checkpoint["key_id"])
        if key is None:
            return CheckpointProblem(cid, seq, f"signed with key {checkpoint['key_id']}, not a trusted key")
        try:
            key.verify(
                base64.b64decode(checkpoint["signature"], validate=True), checkpoint_message(checkpoint)
            )
        except (InvalidSignature, binascii.Error, ValueError):
            return CheckpointProblem(cid, seq, "bad signature: not what the key holder signed")
        self.signed += 1
        return None
