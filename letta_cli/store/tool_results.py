"""Command-tool calls of a turn not yet committed: .agents/tool_calls/<message_id>.jsonl, one line per step.

A call is named by its key (the same kind of key as a memory edit: message id, call number, a hash of the call),
so a turn replayed after a crash finds what it already did:
- `started`: written (and fsynced) before a non-idempotent command runs: a replay that finds it without a
  result knows the command may have run, and does not run it again;
- `finished`: the result, written (and fsynced) before the model sees it: a replay returns it, runs nothing.

Appends are single O_APPEND writes; a line torn by a crash is skipped on reading. The file is only read by
replays of its own message, which run one at a time, and dropped once its turn is committed and applied.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from letta_cli.core.ids import now
from letta_cli.store.fsio import append_line, check_dir, ensure_dir, fsync_dir, read_json_lines
from letta_cli.store.workspace import Workspace

VERSION = 1


class ToolCalls:
    def __init__(self, ws: Workspace):
        self.root = ws.state_dir / "tool_calls"

    def path(self, message_id: str) -> Path:
        return self.root / f"{message_id}.jsonl"

    def lookup(self, message_id: str, key: str) -> dict[str, Any] | None:
        """The last line about this call: {"state": "finished", ...} or {"state": "started", ...}, or None."""
        found: dict[str, Any] | None = None
        for line in read_json_lines(self.path(message_id)):
            if line.get("key") == key:
                if line.get("state") == "finished":
                    return line
                found = line
        return found

    def forget(self, message_id: str) -> None:
        """Drop a message's calls once its turn is committed: it is never replayed again (and a dead letter
        given another chance starts afresh)."""
        check_dir(self.root)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path(message_id))

    def started(self, message_id: str, key: str, tool: str) -> None:
        self._append(message_id, {"key": key, "state": "started", "tool": tool})

    def finished(self, message_id: str, key: str, tool: str, outcome: dict[str, Any]) -> None:
        self._append(message_id, {"key": key, "state": "finished", "tool": tool, **outcome})

    def _append(self, message_id: str, line: dict[str, Any]) -> None:
        path = self.path(message_id)
        ensure_dir(self.root)
        fresh = not os.path.lexists(path)
        record = {"v": VERSION, "at": now().isoformat(), **line}
        append_line(path, json.dumps(record, ensure_ascii=False), sync=True)
        if fresh:  # the new file's name must survive too
            fsync_dir(self.root)
