"""The trace: .agents/trace.jsonl, one JSON event a line, appended atomically (one O_APPEND write each).

Events tie every message to its chain (chain_id) and to the turn that sent it (parent_id), so `agents trace`
can draw the causal tree, and carry tokens and timings so `agents usage` can add them up.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from letta_cli.core.ids import now
from letta_cli.core.models import Message
from letta_cli.core.text import clip
from letta_cli.store.fsio import append_line, read_json_lines

TRACE_VERSION = 1
BODY_CHARS = 2000  # a message body in the trace is cut here (the message itself is whole in the queue)


Listener = Callable[[dict[str, Any]], None]


class Trace:
    def __init__(self, path: Path, listener: Listener | None = None):
        self.path = path
        self.listener = listener  # sees every event once it is on disk (live progress, `-v`)

    def emit(self, event: str, **fields: Any) -> dict[str, Any]:
        record = {"v": TRACE_VERSION, "ts": now().isoformat(), "event": event, **fields}
        append_line(self.path, json.dumps(record, ensure_ascii=False, default=str), sync=False)
        if self.listener is not None:
            self.listener(record)
        return record

    def published(self, message: Message) -> None:
        self.emit(
            "message",
            message_id=message.id,
            chain_id=message.chain_id,
            parent_id=message.parent_id,
            reply_to=message.reply_to,
            sender=message.sender,
            recipient=message.recipient,
            kind=message.kind,
            hop=message.hop,
            body=clip(message.body, BODY_CHARS),
        )

    def events(self) -> Iterator[dict[str, Any]]:
        """Every event line whose known fields have their types (a line edited by hand to hold, say, a
        number where an id belongs is skipped, like a torn line: the views never trip over it)."""
        return (ev for ev in read_json_lines(self.path) if well_typed(ev))


TEXT_FIELDS = (
    *("event", "ts", "message_id", "chain_id", "parent_id", "reply_to", "agent", "sender", "recipient"),
    *("kind", "body", "model", "tool", "status", "result"),
)
COUNT_FIELDS = (
    *("prompt_tokens", "completion_tokens", "cached_tokens", "model_calls", "duration_ms", "hop", "step"),
    *("attempt", "attempts"),
)


def well_typed(ev: dict[str, Any]) -> bool:
    """Text fields are text, counts are whole numbers, lists are lists (each may be absent or null)."""
    if not isinstance(ev.get("event"), str):
        return False
    for key in TEXT_FIELDS:
        if not isinstance(ev.get(key, ""), str | None):
            return False
    for key in COUNT_FIELDS:
        value = ev.get(key, 0)
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool)):
            return False
    return isinstance(ev.get("tool_calls", []), list | None) and isinstance(ev.get("reply", []), list | str | None)
