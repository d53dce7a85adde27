"""Agent histories: .agents/history/<agent>.jsonl, append-only, one HistoryEntry a line; and the readers of
append-only JSON-lines files (a history, the trace): the tail, the last turns, and following new lines.

A reader skips what is not a complete JSON object line (a line torn by a crash, or cut by where a tail
starts), as the engine does.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from letta_cli.core.models import HistoryEntry
from letta_cli.store.fsio import append_line

TAIL_CHUNK = 256 * 1024
Accept = Callable[[dict[str, Any]], bool]


def append_turn(path: Path, entries: list[dict[str, Any]]) -> None:
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


def _object_lines(raw: Iterable[bytes], accept: Accept | None = None) -> Iterator[str]:
    """The lines that are history entries (or, with `accept`, what it accepts): a torn line, or one whose
    fields have the wrong types, is skipped."""
    for line in raw:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and (accept or is_entry)(obj):
            yield line.decode("utf-8", errors="replace")


def is_entry(obj: dict[str, Any]) -> bool:
    try:
        entry = HistoryEntry.model_validate(obj)
    except ValidationError:
        return False
    return all(isinstance(c.get("function", {}), dict) for c in entry.tool_calls or ())


def all_lines(path: Path) -> list[str]:
    """Every entry line of the file, as stored."""
    try:
        return list(_object_lines(path.read_bytes().split(b"\n")))
    except FileNotFoundError:
        return []


def last_turns(path: Path, turns: int) -> list[str]:
    """The entry lines of the last `turns` turns, as stored (reading only as much of the end as they need)."""
    if turns <= 0:
        return []
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return []
    chunk = 64 * 1024
    while True:
        lines = list(_object_lines(_tail_lines(path, chunk)))
        seen = list(dict.fromkeys(json.loads(line).get("turn_id") for line in lines))
        if len(seen) > turns or chunk >= size:
            keep = set(seen[-turns:])
            return [line for line in lines if json.loads(line).get("turn_id") in keep]
        chunk *= 4


def tail(path: Path, nbytes: int) -> list[dict[str, Any]]:
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


@dataclass
class Follower:
    """Reads the lines appended to a file since the last look (`history --follow`, live progress)."""

    path: Path
    accept: Accept | None = None  # which JSON objects are lines (default: history entries)
    offset: int = 0
    partial: bytes = b""

    def at_line_with(self, marker: str, window: int = 1024 * 1024) -> Follower:
        """Start at the line holding `marker` if it is among the last `window` bytes, else at the end."""
        try:
            size = self.path.stat().st_size
            with open(self.path, "rb") as fh:
                start = max(0, size - window)
                fh.seek(start)
                data = fh.read(size - start)
        except FileNotFoundError:
            return self
        found = data.find(marker.encode())
        self.offset = size if found < 0 else start + data.rfind(b"\n", 0, found) + 1
        return self

    def read(self) -> list[str]:
        """The complete entry lines appended since the last read (a replaced or truncated file: from its start)."""
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self.offset:
            self.offset, self.partial = 0, b""
        if size == self.offset:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read(size - self.offset)
        self.offset += len(data)
        *complete, self.partial = (self.partial + data).split(b"\n")
        return list(_object_lines(complete, self.accept))
