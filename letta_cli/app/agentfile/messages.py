"""Letta's messages and our history lines, both ways."""

from __future__ import annotations

import contextlib
import json
from typing import Any

from letta_cli.app.agentfile.format import AfAgent, AfFunction, AfMessage, AfToolCall
from letta_cli.core.errors import InvalidFile
from letta_cli.core.ids import new_id, now
from letta_cli.core.models import USER, HistoryEntry

# No "system": past the first message (the prompt), a system message in a file's conversation is an
# instruction planted where nobody reads it.
HISTORY_ROLES = {"user", "assistant", "tool"}


def to_history(a: AfAgent, max_chars: int, source: str) -> tuple[list[HistoryEntry], dict[str, int]]:
    """An agent's messages as history lines, one turn per user message; and the roles skipped, counted
    (system messages after the first among them)."""
    messages = list(a.messages or [])
    if messages and messages[0].role == "system":
        messages = messages[1:]  # Letta's compiled system prompt: ours is rebuilt on every call
    entries: list[HistoryEntry] = []
    skipped: dict[str, int] = {}
    turn_id, seq = new_id(), 0
    for m in messages:
        if m.role not in HISTORY_ROLES:
            skipped[m.role] = skipped.get(m.role, 0) + 1
            continue
        if m.role == "user" and entries:
            turn_id, seq = new_id(), 0
        content = message_text(m)
        if content is not None and len(content) > max_chars:
            raise InvalidFile(
                f"{source}: a message of agent {a.name!r} has {len(content)} characters, more than we allow ({max_chars})"
            )
        calls = [c.model_dump(include={"id", "type", "function"}) for c in m.tool_calls or []] or None
        entries.append(
            HistoryEntry(
                turn_id=turn_id,
                seq=seq,
                role=m.role,
                content=content or "",  # "" not null: an assistant turn of only tool calls has no text
                tool_calls=calls,
                tool_call_id=m.tool_call_id if m.role == "tool" else None,
                name=m.name,
                sender=USER if m.role == "user" else None,
                created_at=m.created_at or now(),
            )
        )
        seq += 1
    return entries, skipped


def message_text(m: AfMessage) -> str | None:
    """The text of a Letta message: its text parts (reasoning dropped), else a tool return's response."""
    if isinstance(m.content, str):
        text: str | None = m.content
    else:
        parts = [p["text"] for p in m.content or [] if p.get("type") == "text" and isinstance(p.get("text"), str)]
        text = "\n".join(parts) if parts else None
    if text is None and m.tool_returns:
        text = next((r.func_response for r in m.tool_returns if r.func_response is not None), None)
    if m.role == "user" and text and text.startswith("{"):
        with contextlib.suppress(ValueError):  # older Letta wrapped user text: {"type": "user_message", ...}
            wrapped = json.loads(text)
            if isinstance(wrapped, dict) and wrapped.get("type") == "user_message":
                text = wrapped["message"] if isinstance(wrapped.get("message"), str) else text
    return text


def to_letta(e: HistoryEntry, message_id: str, agent_id: str) -> AfMessage:
    """A history line in Letta's message shape: a content list of text parts; who sent it is not carried."""
    return AfMessage.model_construct(
        id=message_id,
        agent_id=agent_id,
        role=e.role,
        content=[] if e.content is None else [{"type": "text", "text": e.content}],
        name=e.name,
        tool_calls=[_tool_call(c) for c in e.tool_calls or []] or None,
        tool_call_id=e.tool_call_id,
        tool_returns=[],
        created_at=e.created_at,
    )


def _tool_call(call: dict[str, Any]) -> AfToolCall:
    # our turns always write id, name and arguments; a hand-edited line may not, and still exports
    fn = call.get("function")
    fn = fn if isinstance(fn, dict) else {}
    arguments = fn.get("arguments", "")
    arguments = arguments if isinstance(arguments, str) else json.dumps(arguments, default=str)
    function = AfFunction.model_construct(name=str(fn.get("name", "")), arguments=arguments)
    return AfToolCall.model_construct(id=str(call.get("id", "")), function=function)
