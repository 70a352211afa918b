"""The chain key (PIM_AUDIT_CHAIN_KEY): the secret every process that writes audit events
holds, and the database never does (see audit.chain).

The setting holds one key, or several separated by commas or white space after a rotation:
the first one keys new events, the others only verify older ones. A key is any secret text of
at least MIN_LENGTH characters (``manage.py audit_keygen`` prints one); its bytes, as written,
are the HMAC key.
"""

import re
from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from . import chain

MIN_LENGTH = 32


@dataclass(frozen=True)
class ChainKey:
    id: str
    secret: bytes

    def __repr__(self):  # never the secret, not even in a traceback
        return f"ChainKey({self.id})"


def parse(text: str) -> list[ChainKey]:
    """The keys in a setting's text, current first; ValueError (without the key) if one is
    too short to be a secret."""
    keys = []
    for part in re.split(r"[\s,]+", (text or "").strip()):
        if not part:
            continue
        if len(part) < MIN_LENGTH:
            raise ValueError(f"a chain key must be at least {MIN_LENGTH} characters, one has {len(part)}")
        secret = part.encode("utf-8")
        keys.append(ChainKey(chain.chain_key_id(secret), secret))
    return keys


def configured() -> list[ChainKey]:
    return parse(getattr(settings, "PIM_AUDIT_CHAIN_KEY", ""))


def current() -> ChainKey:
    """The key new events and the chain head are sealed with; a process without one must not
    write to the log (every event after the switch to the keyed chain is keyed)."""
    keys = configured()
    if not keys:
        raise ImproperlyConfigured(
            "PIM_AUDIT_CHAIN_KEY is not set: this process cannot write audit events "
            "(manage.py audit_keygen prints a key; see README 'Verifying the audit log')."
        )
    return keys[0]


def keyring() -> dict[str, bytes] | None:
    """Every configured key by id, for verifying; None when none is configured."""
    return {key.id: key.secret for key in configured()} or None
