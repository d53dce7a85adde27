"""Agent histories: .agents/history/<agent>.jsonl, append-only, one HistoryEntry a line."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import ValidationError

from letta_cli.core.models import HistoryEntry
from letta_cli.store.fsio import append_line

TAIL_CHUNK = 256 * 1024


def append_turn(path: Path, entries: list[dict]) -> None:
    """Append a turn's entries in ONE write, so a crash leaves all of them or none."""
    if entries:
        append_line(path, "\n".join(json.dumps(e, ensure_ascii=False, default=str) for e in entries))


def has_turn(path: Path, turn_id: str) -> bool:
    """Is this turn already in the history? Only the tail needs checking: turns are appended in order."""
    needle = turn_id.encode()
    for raw in _tail_lines(path, TAIL_CHUNK):
        if needle in raw:  # a byte search first: parsing every line of the tail is the slow part
            try:
                if json.loads(raw).get("turn_id") == turn_id:
                    return True
            except ValueError:
                continue  # a torn line
    return False


def _tail_lines(path: Path, nbytes: int) -> list[bytes]:
    """The complete lines within roughly `nbytes` of the end of the file (a line cut by the start is dropped)."""
    try:
        with open(path, "rb") as fh:
            start = max(0, fh.seek(0, os.SEEK_END) - nbytes)
            fh.seek(start)
            lines = fh.read().split(b"\n")
    except FileNotFoundError:
        return []
    return lines[1:] if start > 0 else lines


def tail(path: Path, nbytes: int) -> list[dict]:
    """The last complete entries within roughly `nbytes` of the end of the file."""
    out = []
    for raw in _tail_lines(path, nbytes):
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def window(path: Path, max_entries: int, max_chars: int) -> list[HistoryEntry]:
    """Recent history for a request: at most `max_entries` and `max_chars`, starting at a turn boundary so
    that tool calls and their results are never split."""
    if max_entries == 0 or max_chars == 0:
        return []
    picked: list[HistoryEntry] = []
    used = 0
    for raw in reversed(_tail_lines(path, max(max_chars * 2, 64 * 1024))):  # newest first
        try:
            entry = HistoryEntry.model_validate_json(raw)
        except (ValidationError, ValueError):
            continue  # a blank line, the cut first line of the tail, or a torn one
        size = len(entry.content or "") + len(json.dumps(entry.tool_calls) if entry.tool_calls else "")
        if len(picked) >= max_entries or used + size > max_chars:
            break
        picked.append(entry)
        used += size
    picked.reverse()
    while picked and picked[0].seq != 0:  # drop a partial turn at the front
        picked.pop(0)
    return picked
