"""Agent histories: .agents/history/<agent>.jsonl, append-only, one HistoryEntry a line."""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import ValidationError

from letta_cli.fsio import append_line, read_json_lines
from letta_cli.models import HistoryEntry

TAIL_CHUNK = 256 * 1024


def append_turn(path: Path, entries: list[dict]) -> None:
    """Append a turn's entries in ONE write, so a crash leaves all of them or none."""
    if entries:
        append_line(path, "\n".join(json.dumps(e, ensure_ascii=False, default=str) for e in entries))


def has_turn(path: Path, turn_id: str) -> bool:
    """Is this turn already in the history? Only the tail needs checking: turns are appended in order."""
    if turn_id.encode() not in _tail_bytes(path, TAIL_CHUNK):  # the usual answer, without parsing JSON
        return False
    return any(e.get("turn_id") == turn_id for e in tail(path, TAIL_CHUNK))


def _tail_bytes(path: Path, nbytes: int) -> bytes:
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - nbytes))
            return fh.read()
    except FileNotFoundError:
        return b""


def tail(path: Path, nbytes: int) -> list[dict]:
    """The last complete entries within roughly `nbytes` of the end of the file."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        return []
    with open(path, "rb") as fh:
        start = max(0, size - nbytes)
        fh.seek(start)
        data = fh.read()
    lines = data.split(b"\n")
    if start > 0:
        lines = lines[1:]  # the first line is probably cut
    out = []
    for raw in lines:
        try:
            obj = json.loads(raw)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def read_all(path: Path) -> list[dict]:
    return list(read_json_lines(path))


def window(path: Path, max_entries: int, max_chars: int) -> list[HistoryEntry]:
    """Recent history for a request: at most `max_entries` and `max_chars`, starting at a turn boundary so
    that tool calls and their results are never split."""
    if max_entries == 0 or max_chars == 0:
        return []
    picked: list[HistoryEntry] = []
    used = 0
    for raw in reversed(_tail_bytes(path, max(max_chars * 2, 64 * 1024)).split(b"\n")):  # newest first
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
