"""Names and URLs from a file we did not write: Letta's names into our rule, credentials out of URLs."""

from __future__ import annotations

import re
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

from letta_cli.app.agentfile.format import AfAgent
from letta_cli.core.errors import Conflict, InvalidFile, UsageError
from letta_cli.core.names import NAME_RULE, check_agent_name, is_valid_name, reserved_reason


def normalise_name(raw: str) -> str:
    """A Letta name or label in our rule: lowercase, spaces to '-', other characters dropped ('' if none left)."""
    name = re.sub(r"\s+", "-", raw.strip().lower())
    name = re.sub(r"[^a-z0-9_-]", "", name)
    return name.lstrip("-_")[:64]


def is_hostile(raw: str) -> bool:
    """A name that tries to be a path (or hides control characters) is refused, never quietly cleaned."""
    return any(c in raw for c in "/\\") or raw.startswith(".") or any(ord(c) < 32 or ord(c) == 127 for c in raw)


def parse_renames(items: list[str]) -> dict[str, str]:
    """['Old Name=new-name', ...] -> {'Old Name': 'new-name'}"""
    out: dict[str, str] = {}
    for item in items:
        old, sep, new = item.rpartition("=")
        if not sep or not old:
            raise UsageError(f"--rename must look like OLD=NEW, got {item!r}")
        if old in out:
            raise UsageError(f"--rename {old!r} is given twice")
        out[old] = check_agent_name(new.strip())
    return out


def strip_credentials(url: str) -> str:
    """A URL without user:password@ and without a query string (where keys like to hide)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # the URL itself is not shown: it may hold a password
        raise InvalidFile("a model endpoint is not a valid URL") from None
    if ":" in host:
        host = f"[{host}]"
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


KEY_RUN_RE = re.compile(r"[A-Za-z0-9]{24,}")  # a key's random part; words and dated model names are shorter


def shareable_url(url: str) -> str:
    """A URL fit for a file others will read: no credentials, no query, and the path cut before the first
    segment that looks like a key (some gateways take the key in the path)."""
    parts = urlsplit(strip_credentials(url))
    kept: list[str] = []
    for segment in parts.path.split("/"):
        run = KEY_RUN_RE.search(segment)
        if run and re.search(r"\d", run[0]) and re.search(r"[A-Za-z]", run[0]):
            break
        kept.append(segment)
    return urlunsplit((parts.scheme, parts.netloc, "/".join(kept), "", ""))


def agent_names(
    agents: list[AfAgent], renames: dict[str, str], prefix: str, source: str, exists: Callable[[str], bool]
) -> tuple[list[str], list[str]]:
    """Our name for each agent of the file (renamed, else normalised and prefixed), all of them free; and
    the names normalisation changed ("'Old' -> 'new'")."""
    names: list[str] = []
    normalised: list[str] = []
    for a in agents:
        if a.name in renames:
            names.append(renames[a.name])
            continue
        if is_hostile(a.name):
            raise InvalidFile(
                f"{source}: agent name {a.name!r} looks like a path; import it with --rename {a.name!r}=NEW"
            )
        name = normalise_name(a.name)
        if name in renames:
            names.append(renames[name])
            continue
        if not name:
            raise InvalidFile(f"{source}: agent name {a.name!r} has no usable characters; use --rename {a.name!r}=NEW")
        if name != a.name:
            normalised.append(f"{a.name!r} -> {name!r}")
        full = prefix + name
        if not is_valid_name(full):
            raise UsageError(f"--prefix {prefix!r} makes the invalid agent name {full!r}: use {NAME_RULE}")
        reason = reserved_reason(full)
        if reason is not None:  # "User" must not become the person at the shell
            raise InvalidFile(f"{source}: agent {a.name!r}: {reason}; import it with --rename {a.name!r}=NEW")
        names.append(full)
    known = {a.name for a in agents} | {normalise_name(a.name) for a in agents}
    unknown = set(renames) - known
    if unknown:
        raise UsageError(f"--rename: no agent named {sorted(unknown)[0]!r} in {source}")
    seen: dict[str, str] = {}
    for a, name in zip(agents, names, strict=True):
        if name in seen:
            raise Conflict(f"{source}: agents {seen[name]!r} and {a.name!r} would both be named {name!r}; use --rename")
        seen[name] = a.name
        if exists(name):
            raise Conflict(f"agent {name!r} already exists; import it under another name with --rename or --prefix")
    return names, normalised


def our_tags(raw_tags: list[str]) -> tuple[list[str], list[str]]:
    """Tags in our rule, each once, unusable ones dropped; and what changed ("'Old' -> 'new'", "'x' dropped")."""
    tags: list[str] = []
    changed: list[str] = []
    for raw in raw_tags:
        tag = "" if is_hostile(raw) else normalise_name(raw)
        if tag != raw:
            changed.append(f"{raw!r} -> {tag!r}" if tag else f"{raw!r} dropped")
        if tag and tag not in tags:
            tags.append(tag)
    return tags, changed
