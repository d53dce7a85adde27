"""Reading an agent's history: the stored lines (all, the last turns, or following new ones) and each turn
as readable lines, tool calls folded to one line each. Reads only; the CLI renders."""

from __future__ import annotations

import json
import re
from typing import Any

from letta_cli.core.errors import NotFound
from letta_cli.core.models import USER
from letta_cli.core.text import flatten
from letta_cli.store import history
from letta_cli.store.agents import AgentStore
from letta_cli.store.history import Follower
from letta_cli.store.workspace import Workspace

LETTA_PREFIX_RE = re.compile(r"^\[Incoming message from agent with ID '(?P<sender>[^']+)' - (?P<note>[^\]]*)\] ")
TEXT_ARGS = {"content", "message", "old_content", "new_content", "query", "request_heartbeat"}


def _check_agent(ws: Workspace, name: str) -> None:
    """An agent with no history yet is fine (it may speak later); an unknown name with none is an error."""
    if not ws.history_file(name).exists() and not AgentStore(ws).exists(name):
        raise NotFound(f"no agent named {name!r} and no history for it")


def history_lines(ws: Workspace, name: str, last_turns: int | None = None) -> list[str]:
    """The stored lines of an agent's history (the last `last_turns` turns), each a HistoryEntry as JSON."""
    _check_agent(ws, name)
    path = ws.history_file(name)
    return history.all_lines(path) if last_turns is None else history.last_turns(path, last_turns)


def follow(ws: Workspace, name: str, last_turns: int | None = None) -> tuple[Follower, list[str]]:
    """The history so far (its last `last_turns` turns), and a Follower whose read() returns the lines
    appended since."""
    _check_agent(ws, name)
    follower = Follower(ws.history_file(name))
    lines = follower.read()
    if last_turns is not None:
        keep = {turn_id for turn_id, _ in group_turns(lines)[-last_turns:]} if last_turns > 0 else set()
        lines = [line for line in lines if json.loads(line).get("turn_id") in keep]
    return follower, lines


def group_turns(lines: list[str]) -> list[tuple[str, list[dict[str, Any]]]]:
    """History lines grouped by turn, in file order."""
    turns: dict[str, list[dict[str, Any]]] = {}
    for line in lines:
        entry = json.loads(line)
        turns.setdefault(entry.get("turn_id", "?"), []).append(entry)
    return list(turns.items())


def split_prefix(text: str) -> tuple[str | None, str]:
    """Letta's "[Incoming message from agent with ID 'x' - ...] " prefix: (sender, the rest)."""
    m = LETTA_PREFIX_RE.match(text or "")
    if not m:
        return None, text or ""
    return m["sender"], text[m.end() :]


def call_summary(name: str, arguments: str | dict[str, Any] | None) -> str:
    """`core_memory_append(label=notes)`: a tool call with its short, identifying arguments."""
    args = arguments
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return f"{name}({flatten(args, 40)})"
    if not isinstance(args, dict):
        return f"{name}()"
    shown = []
    for key, value in args.items():
        if key in TEXT_ARGS:
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        shown.append(f"{key}={flatten(str(value), 40)}")
    return f"{name}({', '.join(shown)})"


def tool_line(name: str, arguments: Any, result: str | None, failed: bool) -> str:
    """`→ tool(args) ✓ result`: one tool call and how it went, on one line."""
    mark = "✗" if failed else "✓"
    text = flatten(result, 100)
    return f"→ {call_summary(name, arguments)} {mark}" + (f" {text}" if text and (failed or len(text) > 2) else "")


def render_turn(entries: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """One turn of a history as (style, line) pairs: who said what, tool calls folded to one line each."""
    results = {e.get("tool_call_id"): e for e in entries if e.get("role") == "tool"}
    lines: list[tuple[str, str]] = []
    for e in entries:
        role, content = e.get("role"), e.get("content") or ""
        if role == "user":
            sender, body = split_prefix(content)
            who = e.get("sender") or sender or USER
            label = USER if who == USER else f"from {who}"
            lines.append(("bold", f"{label}: {body}"))
        elif role == "assistant":
            if content.strip():
                lines.append(("", f"assistant: {content.strip()}"))
            for call in e.get("tool_calls") or []:
                fn = call.get("function", {})
                res = results.get(call.get("id"), {})
                out = res.get("content")
                failed = out is None or str(out).startswith("Error")
                lines.append(("dim", "  " + tool_line(fn.get("name", "?"), fn.get("arguments"), out, failed)))
        elif role == "system":
            lines.append(("dim", f"system: {content}"))
    return lines
