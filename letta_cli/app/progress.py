"""Live progress for a waiting `agents send` / `broadcast`: who is working, for how long; and `-v` event lines.

Turn events reach us two ways: as a trace listener while this process serves the queue itself, and by
reading trace.jsonl from where it ended when we started while another process serves. Either way only the
chains this command started are shown. Everything goes to stderr; stdout stays for the result.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

from letta_cli.app.inspect import Follower, call_summary, one_line
from letta_cli.core.models import Message
from letta_cli.store.workspace import Workspace

if TYPE_CHECKING:
    from rich.text import Text

CATCH_UP_SECONDS = 1.0


def _key(ev: dict) -> tuple:
    return (ev.get("ts"), ev.get("event"), ev.get("message_id"), ev.get("step"), ev.get("tool"))


def event_line(ev: dict) -> str | None:
    """One readable line for a trace event (the `-v` stream), or None for events not worth a line."""
    kind, agent = ev.get("event"), ev.get("agent") or ev.get("sender") or "?"
    if kind == "message":
        body = json.dumps(one_line(ev.get("body"), 60), ensure_ascii=False)
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
        detail = f"{call_summary(ev.get('tool', '?'), ev.get('arguments'))} {mark} {ev.get('duration_ms')}ms {one_line(ev.get('result'), 80)}"
    elif kind == "retry":
        detail = f"attempt {ev.get('attempt')} failed, again in {ev.get('delay')}s: {one_line(ev.get('error'), 100)}"
    elif kind == "turn_end":
        tokens = (ev.get("prompt_tokens") or 0) + (ev.get("completion_tokens") or 0)
        said = one_line(" ".join(ev.get("reply") or []) or ev.get("error"), 60)
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
    """Follows the turns of some chains; shows a spinner (a terminal) and/or event lines (`-v`) on stderr."""

    def __init__(self, ws: Workspace, messages: list[Message], *, spinner: bool, verbose: bool):
        self.chains = {m.chain_id for m in messages}
        self.roots = {m.id for m in messages}
        self.names = {m.id: m.recipient for m in messages}
        self.verbose = verbose
        # from our own first message on: the turns may start before we get here
        self.follower = Follower(ws.trace_path).at_line_with(messages[0].id)
        self.working: dict[str, tuple[str, float]] = {}  # message id -> (agent, monotonic start)
        self.waiting_on: dict[str, set[str]] = {}  # message id -> requests its turn awaits
        self.answered: set[str] = set()
        self.seen: set[tuple] = set()
        self.polled = False
        self.lock = threading.Lock()
        self.status = None
        if spinner:
            from rich.console import Console
            from rich.status import Status

            self.status = Status(self, console=Console(stderr=True, highlight=False), spinner="dots")

    # --- feeding -----------------------------------------------------------------------------------

    def on_event(self, ev: dict) -> None:
        """A trace listener (this process serves the queue)."""
        if ev.get("chain_id") in self.chains:
            self.seen.add(_key(ev))
            self._feed(ev)

    def on_poll(self) -> None:
        """Called while another process serves: read what it appended to the trace."""
        self.polled = True
        self._read_trace()

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

    def _feed(self, ev: dict) -> None:
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
        if self.verbose and (line := event_line(ev)) is not None:
            self._say(line)

    def _say(self, line: str) -> None:
        try:
            if self.status is not None:
                self.status.console.print(line, markup=False, highlight=False, soft_wrap=True)
            else:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()
        except OSError:  # stderr went away (a closed pipe): stop talking, keep working
            self.verbose = False

    # --- the spinner -------------------------------------------------------------------------------

    def __rich__(self) -> Text:
        """Recomputed at every refresh of the spinner, so the times keep running."""
        from rich.text import Text

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
        return Text(head + (f" · {done}/{total} answered" if total > 1 else ""), no_wrap=True, overflow="ellipsis")

    def __enter__(self) -> Progress:
        if self.status is not None:
            self.status.start()
        self._read_trace()  # our messages, and whatever another scheduler did with them already
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if kind is None and self.polled:
            self._catch_up()
        if self.status is not None:
            self.status.stop()

    def _catch_up(self) -> None:
        """Another process serves: its turn_end lines land just after the turn records we waited for."""
        deadline = time.monotonic() + CATCH_UP_SECONDS
        self.on_poll()
        while self.answered != self.roots and time.monotonic() < deadline:
            time.sleep(0.02)
            self.on_poll()


def watching(ws: Workspace, messages: list[Message], *, quiet: bool, verbose: bool) -> Progress:
    """Progress as the CLI wants it: a spinner only on a terminal (and not --quiet); lines with -v always."""
    return Progress(ws, messages, spinner=not quiet and sys.stderr.isatty(), verbose=verbose)
