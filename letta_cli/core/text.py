"""Cutting text down to size, the same way everywhere: for the trace, for tool results, for one-line displays
and for error lines; and making text safe for a terminal.

The cutters blank known secrets before they cut, so a cut never leaves half a key that no redactor would
recognise afterwards.
"""

from __future__ import annotations

import re
from typing import overload

from letta_cli.core.secrets import redact

# C0 controls but newline and tab, DEL, and C1 controls (U+009B is a CSI on its own): every escape sequence
# a terminal obeys starts with one of them. The bidirectional overrides and isolates are not escapes, but they
# make a terminal show text in an order other than the one it has ("Trojan Source"), so they are shown too.
BIDI = "\u202a-\u202e\u2066-\u2069"
CONTROL_RE = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{BIDI}]")
JSON_UNESCAPED_RE = re.compile(f"[\\x7f-\\x9f{BIDI}]")  # what json.dumps(ensure_ascii=False) leaves raw


@overload
def clip(text: str, limit: int, note: str = ...) -> str: ...
@overload
def clip(text: None, limit: int, note: str = ...) -> None: ...
def clip(text: str | None, limit: int, note: str = "more chars") -> str | None:
    """The first `limit` characters, then how many were cut: "abc... [1200 more chars]"."""
    if text is None:
        return text
    text = redact(text)
    if len(text) <= limit:
        return text
    return text[:limit] + f"... [{len(text) - limit} {note}]"


def shorten(text: str, limit: int) -> str:
    """The first `limit` characters, then "..." if there was more (to quote a model's text back to it)."""
    text = redact(text)
    return text if len(text) <= limit else text[:limit] + "..."


def flatten(text: str | None, limit: int = 80) -> str:
    """One display line: every run of whitespace becomes one space, cut to `limit` characters with "…"."""
    flat = " ".join(redact(text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def escape_newlines(text: str) -> str:
    """Line breaks shown as \\n and \\r, so an error stays one line whatever a file name or a model put in it."""
    return text.replace("\r", "\\r").replace("\n", "\\n")


def _written_out(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def for_terminal(text: str) -> str:
    """Text a terminal shows but never obeys: each control character (but newline and tab) written out as
    \\x1b, so a model's reply cannot retitle the window, move the cursor or clear the screen; and no known
    secret in it."""
    text = redact(text)
    if CONTROL_RE.search(text) is None:
        return text
    return CONTROL_RE.sub(_written_out, text.replace("\r\n", "\n"))


def json_for_terminal(text: str) -> str:
    """JSON text with DEL and the C1 controls escaped too (\\u009b): the same JSON value, safe at a terminal
    (json.dumps escapes the C0 controls itself); and no known secret in it."""
    text = redact(text)
    if JSON_UNESCAPED_RE.search(text) is None:
        return text
    return JSON_UNESCAPED_RE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)
