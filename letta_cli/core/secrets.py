"""The secrets this process read for its model calls, and the one redactor that blanks them wherever text
could be echoed: error texts, every state file written (store/fsio), everything the CLI prints.

Redaction goes by value, not by a variable's name: an endpoint that echoes the Authorization header in its
error text puts the key there whatever the variable holding it is called.
"""

from __future__ import annotations

import json
from urllib.parse import quote, urlsplit

MASK = "***"
MASK_BYTES = MASK.encode()
MIN_CHARS = 8  # no real key is shorter, and blanking a short value would blank ordinary words

# Every form a secret takes in text: as it is, escaped inside a JSON string, percent-encoded in a URL.
# Longest first, so a secret holding another is blanked whole. Replaced, never mutated: the I/O threads
# read it while the event loop may add to it.
_forms: tuple[str, ...] = ()
_forms_bytes: tuple[bytes, ...] = ()
_known: frozenset[str] = frozenset()


def remember(value: str | None) -> None:
    """Note a secret this process read (an API key from the environment), to be blanked from now on."""
    global _forms, _forms_bytes, _known
    if not value or len(value) < MIN_CHARS or value in _known:
        return
    forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1], quote(value, safe="")}
    _known = _known | {value}
    _forms = tuple(sorted(set(_forms) | forms, key=len, reverse=True))
    _forms_bytes = tuple(f.encode() for f in _forms)


def remember_url(url: str | None) -> None:
    """The password of a user:password@ URL is a secret too."""
    if url:
        try:
            password = urlsplit(url).password
        except ValueError:
            return
        remember(password)


def redact(text: str) -> str:
    for form in _forms:  # no secrets known (every process that makes no model call): no loop at all
        if form in text:
            text = text.replace(form, MASK)
    return text


def redact_bytes(data: bytes) -> bytes:
    for form in _forms_bytes:
        if form in data:
            data = data.replace(form, MASK_BYTES)
    return data
