"""Message ids as a person types them: whole, or 8+ characters of the beginning or the end (as printed)."""

from __future__ import annotations

from letta_cli.core.errors import UsageError


def short_id(value: str | None) -> str:
    """The tail of an id: UUIDv7s share their leading (time) digits, and ids derived from one message share
    even more, so the last 12 digits are what tells them apart. Lookups accept it (see `matches`)."""
    return "…" + value[-12:] if value else "-"


def matches(value: str, ref: str) -> bool:
    """Does `ref` name this id: the whole id, its beginning, or its end (as `short_id` prints it)?"""
    return value.startswith(ref) or value.endswith(ref)


def clean_ref(ref: str) -> str:
    """The id part of what a person typed (a pasted "…" dropped); UsageError if too short to be unique."""
    ref = ref.strip().lower().lstrip("…").lstrip(".")
    if len(ref) < 8:
        raise UsageError("give a message id, or at least 8 characters of its beginning or end")
    return ref
