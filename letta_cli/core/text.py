"""Cutting text down to size, the same way everywhere: for the trace, for tool results, for one-line displays
and for error lines."""

from __future__ import annotations

from typing import overload


@overload
def clip(text: str, limit: int, note: str = ...) -> str: ...
@overload
def clip(text: None, limit: int, note: str = ...) -> None: ...
def clip(text: str | None, limit: int, note: str = "more chars") -> str | None:
    """The first `limit` characters, then how many were cut: "abc... [1200 more chars]"."""
    if text is None or len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} {note}]"


def shorten(text: str, limit: int) -> str:
    """The first `limit` characters, then "..." if there was more (to quote a model's text back to it)."""
    return text if len(text) <= limit else text[:limit] + "..."


def flatten(text: str | None, limit: int = 80) -> str:
    """One display line: every run of whitespace becomes one space, cut to `limit` characters with "…"."""
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def escape_newlines(text: str) -> str:
    """Line breaks shown as \\n and \\r, so an error stays one line whatever a file name or a model put in it."""
    return text.replace("\r", "\\r").replace("\n", "\\n")
