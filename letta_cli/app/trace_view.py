"""The causal tree of a chain, from the trace: each message, the turn it triggered (its model calls, tool
calls, retries, tokens and time), and the messages that turn sent. Reads only; the CLI draws the tree."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from letta_cli.app.refs import clean_ref, matches
from letta_cli.core.errors import NotFound, UsageError
from letta_cli.store.trace import Trace
from letta_cli.store.workspace import Workspace


def events(ws: Workspace) -> Iterator[dict[str, Any]]:
    return Trace(ws.trace_path).events()


def find_chain(ws: Workspace, ref: str) -> str:
    """The chain of a message id (whole, or a unique beginning or end of 8+ characters), or a chain id."""
    ref = clean_ref(ref)
    found: dict[str, str] = {}
    for ev in events(ws):
        for key in ("message_id", "chain_id"):
            value = ev.get(key)
            if isinstance(value, str) and matches(value, ref) and ev.get("chain_id"):
                found.setdefault(value, ev["chain_id"])
    if ref in found:
        return found[ref]
    chains = set(found.values())
    if not chains:
        raise NotFound(f"no message {ref!r} in the trace ({ws.trace_path})")
    if len(chains) > 1:
        raise UsageError(f"{ref!r} matches messages of {len(chains)} chains; give more of the id")
    return chains.pop()


def last_chain(ws: Workspace) -> str:
    """The chain of the most recent message sent from a shell."""
    chain = None
    for ev in events(ws):
        if ev.get("event") == "message" and ev.get("parent_id") is None:
            chain = ev.get("chain_id")
    if chain is None:
        raise NotFound("no message has been sent in this workspace yet")
    return str(chain)


COMMAND_FIELDS = ("exit_code", "timed_out", "replayed")
TURN_EVENTS = {"turn_start", "model_call", "tool_call", "retry", "turn_end", "requeue"}


@dataclass
class _Turn:
    agent: str | None = None
    attempt: int = 0
    started_at: str | None = None
    end: dict[str, Any] | None = None
    model_calls: list[dict[str, Any]] = field(default_factory=list[Any])
    tool_calls: list[dict[str, Any]] = field(default_factory=list[Any])
    retries: list[dict[str, Any]] = field(default_factory=list[Any])

    def start(self, ev: dict[str, Any]) -> None:
        """A new attempt: what an earlier, failed attempt did is kept only as a retry note."""
        self.agent, self.attempt, self.started_at = ev.get("agent"), ev.get("attempt", 1), ev.get("ts")
        self.tool_calls = []

    def requeued(self) -> None:
        """`agents queue retry` gave a dead letter a new life: attempts count from 1 again."""
        if self.end is not None:
            self.retries.append(
                {"attempt": self.end.get("attempts"), "error": f"dead: {self.end.get('error')}", "delay": None}
            )
        self.end, self.model_calls, self.tool_calls = None, [], []

    def as_json(self) -> dict[str, Any]:
        end = self.end or {}
        status = end.get("status") or "running"
        this_try = [m for m in self.model_calls if m.get("attempt", 1) == (end.get("attempts") or self.attempt)]
        return {
            "agent": end.get("agent") or self.agent,
            "status": status,
            "reply": end.get("reply") or [],
            "error": end.get("error"),
            "attempts": end.get("attempts") or self.attempt,
            "model_calls": end["model_calls"] if end else len(this_try),
            "prompt_tokens": end["prompt_tokens"] if end else sum(m.get("prompt_tokens", 0) for m in this_try),
            "completion_tokens": end["completion_tokens"]
            if end
            else sum(m.get("completion_tokens", 0) for m in this_try),
            "duration_ms": end.get("duration_ms"),
            "started_at": self.started_at,
            "ended_at": end.get("ts"),
            "tool_calls": [
                {k: t.get(k) for k in ("tool", "arguments", "result", "error", "duration_ms")}
                | {k: t[k] for k in COMMAND_FIELDS if k in t}  # a command tool's run
                for t in self.tool_calls
            ],
            "retries": [
                {"attempt": r.get("attempt"), "error": r.get("error"), "delay": r.get("delay")} for r in self.retries
            ],
        }


def chain_tree(ws: Workspace, chain_id: str) -> dict[str, Any]:
    """The causal tree of one chain: each message, the turn it triggered, and the messages that turn sent."""
    messages: dict[Any, dict[str, Any]] = {}
    turns: dict[Any, _Turn] = {}
    for ev in events(ws):
        if ev.get("chain_id") != chain_id:
            continue
        kind, mid = ev.get("event"), ev.get("message_id")
        if kind == "message":
            messages.setdefault(mid, ev)  # published once; a replay re-publishes nothing
            continue
        if kind not in TURN_EVENTS:
            continue
        turn = turns.setdefault(mid, _Turn())
        if kind == "turn_start":
            turn.start(ev)
        elif kind == "model_call":
            turn.model_calls.append(ev)
        elif kind == "tool_call":
            turn.tool_calls.append(ev)
        elif kind == "retry":
            turn.retries.append(ev)
        elif kind == "turn_end":
            turn.end = ev  # twice after a crash replay: the same record, so the last one wins
        elif kind == "requeue":
            turn.requeued()
    if not messages:
        raise NotFound(f"no chain {chain_id} in the trace")

    def node(ev: dict[str, Any]) -> dict[str, Any]:
        mid = ev["message_id"]
        return {
            "message_id": mid,
            "sender": ev.get("sender"),
            "recipient": ev.get("recipient"),
            "kind": ev.get("kind"),
            "hop": ev.get("hop"),
            "reply_to": ev.get("reply_to"),
            "at": ev.get("ts"),
            "body": ev.get("body"),
            "turn": turns[mid].as_json() if mid in turns else None,
            "children": [node(c) for c in children.get(mid, [])],
        }

    children: dict[Any, list[dict[str, Any]]] = {}
    roots = []
    for ev in messages.values():
        parent = ev.get("parent_id")
        if parent in messages:
            children.setdefault(parent, []).append(ev)
        else:
            roots.append(ev)
    return {"chain_id": chain_id, "messages": [node(r) for r in roots]}
