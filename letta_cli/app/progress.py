"""Following the turns of a waiting `agents send` / `broadcast`: who is working, for how long, who waits on
whom; and one readable line per turn event (the `-v` stream). Pure tracking: the CLI draws it.

Turn events reach us two ways: as a trace listener while this process serves the queue itself, and by
reading trace.jsonl from where it ended when we started while another process serves. Either way only the
chains this command started count.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from letta_cli.app.history_view import call_summary
from letta_cli.core.models import Message
from letta_cli.core.text import flatten
from letta_cli.store.history import Follower
from letta_cli.store.trace import well_typed
from letta_cli.store.workspace import Workspace

CATCH_UP_SECONDS = 1.0


def _key(ev: dict[str, Any]) -> tuple[Any, ...]:
    return (ev.get("ts"), ev.get("event"), ev.get("message_id"), ev.get("step"), ev.get("tool"))


def event_line(ev: dict[str, Any]) -> str | None:
    """One readable line for a trace event (the `-v` stream), or None for events not worth a line."""
    kind, agent = ev.get("event"), ev.get("agent") or ev.get("sender") or "?"
    if kind == "message":
        body = json.dumps(flatten(ev.get("body"), 60), ensure_ascii=False)
        detail = f"→ {ev.get('recipient')} ({ev.get('kind')}, hop {ev.get('hop')}) {body}"
    elif kind == "turn_start":
        detail = f"attempt {ev.get('attempt', 1)}"
    elif kind == "model_call":
        calls = ", ".join(ev.get("tool_calls") or []) or "text"
        detail = (
            f"step {ev.get('step')} {ev.get('model')} {ev.get('prompt_tokens')}+{ev.get('completion_tokens')} tokens "
            f"{ev.get('duration_ms')}ms → {calls}"
        )
    elif kind == "tool_call":
        mark = "✗" if ev.get("error") else "✓"
        if "exit_code" in ev:  # a command tool
            mark += " replayed" if ev.get("replayed") else f" exit {ev['exit_code']}"
        detail = f"{call_summary(ev.get('tool', '?'), ev.get('arguments'))} {mark} {ev.get('duration_ms')}ms {flatten(ev.get('result'), 80)}"
    elif kind == "retry":
        detail = f"attempt {ev.get('attempt')} failed, again in {ev.get('delay')}s: {flatten(ev.get('error'), 100)}"
    elif kind == "turn_end":
        tokens = (ev.get("prompt_tokens") or 0) + (ev.get("completion_tokens") or 0)
        said = flatten(" ".join(ev.get("reply") or []) or ev.get("error"), 60)
        detail = f"{ev.get('status')} {ev.get('duration_ms')}ms {ev.get('model_calls')} calls {tokens} tokens {json.dumps(said, ensure_ascii=False)}"
    else:
        return None
    return f"{_clock(ev.get('ts'))} {kind:<10} {agent:<16} {detail}".rstrip()


def _clock(ts: Any) -> str:
    try:
        return datetime.fromisoformat(ts).astimezone().strftime("%H:%M:%S.%f")[:-3]
    except (TypeError, ValueError):
        return "--:--:--.---"


class Progress:
    """Follows the turns of some chains. `on_line`, if given, gets a readable line for each turn event."""

    def __init__(self, ws: Workspace, messages: list[Message], *, on_line: Callable[[str], None] | None = None):
        self.chains = {m.chain_id for m in messages}
        self.roots = {m.id for m in messages}
        self.names = {m.id: m.recipient for m in messages}
        self.on_line = on_line
        # from our own first message on: the turns may start before we get here
        self.follower = Follower(ws.trace_path, accept=well_typed).at_line_with(messages[0].id)
        self.working: dict[str, tuple[str, float]] = {}  # message id -> (agent, monotonic start)
        self.waiting_on: dict[str, set[str]] = {}  # message id -> requests its turn awaits
        self.answered: set[str] = set()
        self.seen: set[tuple[Any, ...]] = set()
        self.polled = False
        self.lock = threading.Lock()

    # --- feeding -----------------------------------------------------------------------------------

    def on_event(self, ev: dict[str, Any]) -> None:
        """A trace listener (this process serves the queue)."""
        if ev.get("chain_id") in self.chains:
            self.seen.add(_key(ev))
            self._feed(ev)

    def on_poll(self) -> None:
        """Called while another process serves: read what it appended to the trace."""
        self.polled = True
        self._read_trace()

    def start(self) -> None:
        """Our messages, and whatever another scheduler did with them already."""
        self._read_trace()

    def finish(self) -> None:
        """Another process serves: its turn_end lines land just after the turn records we waited for."""
        if not self.polled:
            return
        deadline = time.monotonic() + CATCH_UP_SECONDS
        self.on_poll()
        while self.answered != self.roots and time.monotonic() < deadline:
            time.sleep(0.02)
            self.on_poll()

    def _read_trace(self) -> None:
        for line in self.follower.read():
            ev = json.loads(line)
            if ev.get("chain_id") not in self.chains:
                continue
            key = _key(ev)
            if key in self.seen:
                self.seen.discard(key)
                continue
            self._feed(ev)

    def _feed(self, ev: dict[str, Any]) -> None:
        kind, mid = ev.get("event"), str(ev.get("message_id"))
        with self.lock:
            if kind == "turn_start":
                self.working[mid] = (ev.get("agent") or "?", time.monotonic())
            elif kind in ("turn_end", "retry"):
                self.working.pop(mid, None)
                self.waiting_on.pop(mid, None)
                for waits in self.waiting_on.values():
                    waits.discard(mid)
                if kind == "turn_end" and mid in self.roots:
                    self.answered.add(mid)
            elif kind == "message" and ev.get("reply_to"):
                self.waiting_on.setdefault(ev["reply_to"], set()).add(mid)
        if self.on_line is not None and (line := event_line(ev)) is not None:
            self.on_line(line)

    # --- what to show ------------------------------------------------------------------------------

    def headline(self) -> str:
        """Who is working and for how long, or whom we wait for; and how many answered (of several)."""
        clock = time.monotonic()
        with self.lock:
            busy = []
            for mid, (agent, started) in self.working.items():
                waits = len(self.waiting_on.get(mid, ()))
                busy.append(f"{agent} {clock - started:.1f}s" + (f" (waiting on {waits})" if waits else ""))
            done = len(self.answered)
        total = len(self.roots)
        head = (
            f"working: {', '.join(busy[:6])}" + (f" +{len(busy) - 6} more" if len(busy) > 6 else "")
            if busy
            else (f"waiting for {', '.join(sorted(set(self.names.values()))[:6])}…")
        )
        return head + (f" · {done}/{total} answered" if total > 1 else "")
