"""Primary keys for the tables every activation appends to."""

import os
import time
import uuid


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (RFC 9562 version 7): the time in milliseconds since the Unix
    epoch, then 74 random bits (the version and variant take the other six).

    Activation requests and assignments use it as their primary key: rows made around the
    same time sit together in every index keyed by their id (the primary keys, the requests'
    assignment, the audit events' target), so a job over recent rows — the expiry sweep ends
    the activations that started hours ago — reads and writes a few index pages instead of a
    page per row. The id tells when the row was made, to the millisecond, which the rows'
    own created_at/starts_at say anyway; 74 random bits keep it unguessable. (Python 3.14 has
    uuid.uuid7; 3.11 does not.)"""
    return uuid7_of(time.time_ns() // 1_000_000, int.from_bytes(os.urandom(10), "big"))


def uuid7_of(millis: int, random_bits: int) -> uuid.UUID:
    """The version-7 UUID of a time in milliseconds and 80 random bits (of which the version
    and variant replace six): uuid7's layout, for callers that bring their own time and
    randomness (the bench's data generator, seeded)."""
    value = (millis << 80) | (random_bits & ((1 << 80) - 1))
    value = (value & ~(0xF << 76)) | (0x7 << 76)  # version 7
    value = (value & ~(0x3 << 62)) | (0x2 << 62)  # the RFC 9562 variant
    return uuid.UUID(int=value)
