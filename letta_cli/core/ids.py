"""Ids and times: UUIDv7 message ids (time-ordered), ids derived from a parent, and the UTC clock."""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from datetime import UTC, datetime


def now() -> datetime:
    return datetime.now(UTC)


_last_ms_seq = [0, 0]


def new_id() -> str:
    """A UUIDv7: time-ordered (monotonic within a process), so sorting file names gives arrival order."""
    ms = time.time_ns() // 1_000_000
    if ms <= _last_ms_seq[0]:
        ms, seq = _last_ms_seq[0], _last_ms_seq[1] + 1
        if seq > 0xFFF:
            ms, seq = ms + 1, 0
    else:
        seq = 0
    _last_ms_seq[:] = [ms, seq]
    rand = int.from_bytes(secrets.token_bytes(8), "big") & ((1 << 62) - 1)
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | seq << 64 | 0b10 << 62 | rand
    return str(uuid.UUID(int=value))


def derived_id(parent: str, n: int) -> str:
    """A deterministic id for the n-th message a turn sends, so a replayed turn re-sends the same ids.

    Keeps the parent's time prefix; the random part is a hash of the parent id and n, so a child's child
    never comes back to an id already used in the chain (an XOR of the parent's bits did, for n=0).
    """
    base = uuid.UUID(parent).int
    digest = int.from_bytes(hashlib.blake2b(f"{parent}:{n}".encode(), digest_size=8).digest(), "big")
    return str(uuid.UUID(int=(base >> 64 << 64) | 0b10 << 62 | digest & ((1 << 62) - 1)))
