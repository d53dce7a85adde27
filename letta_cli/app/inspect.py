"""Seeing what happened: agent histories, the causal tree of a chain, token usage, the queue, status.

Everything here only reads the plain files under .agents/ (history/, trace.jsonl, turns/, queue/); the two
exceptions are the queue repairs `requeue_dead` and `purge_dead`, which move or delete dead letters. Nothing
here talks to the network. The CLI (cli/inspect_cmds.py) renders what these functions return.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from letta_cli.core.errors import Conflict, NotFound, UsageError
from letta_cli.core.ids import now
from letta_cli.core.models import USER
from letta_cli.store.agents import AgentStore
from letta_cli.store.fsio import read_json_lines
from letta_cli.store.history import tail
from letta_cli.store.queue import NAME_RE, Queue
from letta_cli.store.records import TurnRecords
from letta_cli.store.trace import Trace, clip
from letta_cli.store.workspace import Workspace

# ------------------------------------------------------------------------------------------------ history

LETTA_PREFIX_RE = re.compile(r"^\[Incoming message from agent with ID '(?P<sender>[^']+)' - (?P<note>[^\]]*)\] ")
TEXT_ARGS = {"content", "message", "old_content", "new_content", "query", "request_heartbeat"}


def history_lines(ws: Workspace, name: str, last_turns: int | None = None) -> list[str]:
    """The stored lines of an agent's history (the last `last_turns` turns), each a HistoryEntry as JSON."""
    path = ws.history_file(name)
    if not path.exists():
        if not AgentStore(ws).exists(name):
            raise NotFound(f"no agent named {name!r} and no history for it")
        return []
    if last_turns is None:
        return list(_valid_lines(path.read_bytes().split(b"\n")))
    if last_turns <= 0:
        return []
    size, chunk = path.stat().st_size, 64 * 1024
    while True:
        lines = _tail_lines(path, chunk)
        turns = list(dict.fromkeys(json.loads(line).get("turn_id") for line in lines))
        if len(turns) > last_turns or chunk >= size:
            keep = set(turns[-last_turns:])
            return [line for line in lines if json.loads(line).get("turn_id") in keep]
        chunk *= 4


def _tail_lines(path: Path, nbytes: int) -> list[str]:
    size = path.stat().st_size
    with open(path, "rb") as fh:
        start = max(0, size - nbytes)
        fh.seek(start)
        raw = fh.read().split(b"\n")
    return list(_valid_lines(raw[1:] if start > 0 else raw))


def _valid_lines(raw: Iterable[bytes]) -> Iterator[str]:
    """Complete JSON object lines; a torn or foreign line is skipped, as the engine does."""
    for line in raw:
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            yield line.decode("utf-8", errors="replace")


@dataclass
class Follower:
    """Reads the lines appended to a file since the last look (for `history --follow`)."""

    path: Path
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
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return []
        if size < self.offset:  # replaced or truncated: start over
            self.offset, self.partial = 0, b""
        if size == self.offset:
            return []
        with open(self.path, "rb") as fh:
            fh.seek(self.offset)
            data = fh.read(size - self.offset)
        self.offset += len(data)
        *complete, self.partial = (self.partial + data).split(b"\n")
        return list(_valid_lines(complete))


def split_prefix(text: str) -> tuple[str | None, str]:
    """Letta's "[Incoming message from agent with ID 'x' - ...] " prefix: (sender, the rest)."""
    m = LETTA_PREFIX_RE.match(text or "")
    if not m:
        return None, text or ""
    return m["sender"], text[m.end() :]


def one_line(text: str | None, limit: int = 80) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def call_summary(name: str, arguments: str | dict | None) -> str:
    """`core_memory_append(label=notes)`: a tool call with its short, identifying arguments."""
    args = arguments
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except ValueError:
            return f"{name}({one_line(args, 40)})"
    if not isinstance(args, dict):
        return f"{name}()"
    shown = []
    for key, value in args.items():
        if key in TEXT_ARGS:
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        shown.append(f"{key}={one_line(str(value), 40)}")
    return f"{name}({', '.join(shown)})"


def tool_line(name: str, arguments: Any, result: str | None, failed: bool) -> str:
    mark = "✗" if failed else "✓"
    text = one_line(result, 100)
    return f"→ {call_summary(name, arguments)} {mark}" + (f" {text}" if text and (failed or len(text) > 2) else "")


def render_turn(entries: list[dict]) -> list[tuple[str, str]]:
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


def group_turns(lines: list[str]) -> list[tuple[str, list[dict]]]:
    """History lines grouped by turn, in file order."""
    turns: dict[str, list[dict]] = {}
    for line in lines:
        entry = json.loads(line)
        turns.setdefault(entry.get("turn_id", "?"), []).append(entry)
    return list(turns.items())


# -------------------------------------------------------------------------------------------------- trace


def events(ws: Workspace) -> Iterator[dict]:
    return read_json_lines(ws.trace_path)


def short_id(value: str | None) -> str:
    """The tail of an id: UUIDv7s share their leading (time) digits, and ids derived from one message share
    even more, so the last 12 digits are what tells them apart. Lookups accept it (see `matches`)."""
    return "…" + value[-12:] if value else "-"


def matches(value: str, ref: str) -> bool:
    """Does `ref` name this id: the whole id, its beginning, or its end (as `short_id` prints it)?"""
    return value.startswith(ref) or value.endswith(ref)


def clean_ref(ref: str) -> str:
    ref = ref.strip().lower().lstrip("…").lstrip(".")
    if len(ref) < 8:
        raise UsageError("give a message id, or at least 8 characters of its beginning or end")
    return ref


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
    return chain


TURN_EVENTS = {"turn_start", "model_call", "tool_call", "retry", "turn_end", "requeue"}


@dataclass
class _Turn:
    agent: str | None = None
    attempt: int = 0
    started_at: str | None = None
    end: dict | None = None
    model_calls: list[dict] = field(default_factory=list)
    tool_calls: list[dict] = field(default_factory=list)
    retries: list[dict] = field(default_factory=list)

    def start(self, ev: dict) -> None:
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

    def as_json(self) -> dict:
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
                {k: t.get(k) for k in ("tool", "arguments", "result", "error", "duration_ms")} for t in self.tool_calls
            ],
            "retries": [
                {"attempt": r.get("attempt"), "error": r.get("error"), "delay": r.get("delay")} for r in self.retries
            ],
        }


def chain_tree(ws: Workspace, chain_id: str) -> dict:
    """The causal tree of one chain: each message, the turn it triggered, and the messages that turn sent."""
    messages: dict[Any, dict] = {}
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

    def node(ev: dict) -> dict:
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

    children: dict[Any, list[dict]] = {}
    roots = []
    for ev in messages.values():
        parent = ev.get("parent_id")
        if parent in messages:
            children.setdefault(parent, []).append(ev)
        else:
            roots.append(ev)
    return {"chain_id": chain_id, "messages": [node(r) for r in roots]}


def walk(nodes: list[dict]) -> Iterator[dict]:
    for n in nodes:
        yield n
        yield from walk(n["children"])


# -------------------------------------------------------------------------------------------------- usage

RELATIVE_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_since(text: str, now_: datetime | None = None) -> datetime:
    """'10m', '2h', '1d', '1w' ago, or an ISO date/time (local time unless it names a zone)."""
    text = text.strip()
    m = RELATIVE_RE.match(text.lower())
    if m:
        return (now_ or now()) - timedelta(**{UNITS[m[2]]: float(m[1])})
    try:
        when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"--since {text!r}: give an ISO time (2025-01-31T09:00) or an age like 30s, 10m, 2h, 1d, 1w"
        ) from None
    return when if when.tzinfo else when.astimezone()


def _ts(ev: dict) -> datetime | None:
    try:
        return datetime.fromisoformat(ev["ts"])
    except (KeyError, TypeError, ValueError):
        return None


@dataclass
class Tally:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_calls: int = 0
    by_model: dict[str, list[int]] = field(default_factory=dict)

    def add(self, ev: dict) -> None:
        p, c = int(ev.get("prompt_tokens") or 0), int(ev.get("completion_tokens") or 0)
        self.prompt_tokens += p
        self.completion_tokens += c
        self.model_calls += 1
        per = self.by_model.setdefault(str(ev.get("model")), [0, 0])
        per[0] += p
        per[1] += c

    def as_json(self, prices: dict) -> dict:
        priced = [(m, t) for m, t in self.by_model.items() if m in prices]
        cost = sum(t[0] * prices[m].prompt + t[1] * prices[m].completion for m, t in priced) / 1e6
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "model_calls": self.model_calls,
            "cost_usd": round(cost, 6) if priced else None,
        }


def usage(ws: Workspace, agent: str | None = None, since: datetime | None = None) -> dict:
    """Tokens, model calls and estimated cost per agent, per chain and in all, summed from model_call
    events: every call counts, including nested wait-for-reply turns and attempts that were retried."""
    prices = ws.config.prices
    total = Tally()
    agents: dict[Any, Tally] = {}
    chains: dict[Any, tuple[Tally, set[Any]]] = {}
    models: dict[Any, Tally] = {}
    chain_info: dict[Any, dict] = {}
    for ev in events(ws):
        if ev.get("event") == "message" and ev.get("parent_id") is None:
            chain_info.setdefault(ev.get("chain_id"), {"started_at": ev.get("ts"), "body": clip(ev.get("body"), 80)})
        if ev.get("event") != "model_call" or (agent is not None and ev.get("agent") != agent):
            continue
        if since is not None and ((when := _ts(ev)) is None or when < since):
            continue
        total.add(ev)
        agents.setdefault(ev.get("agent"), Tally()).add(ev)
        chains.setdefault(ev.get("chain_id"), (Tally(), set()))[0].add(ev)
        chains[ev.get("chain_id")][1].add(ev.get("agent"))
        models.setdefault(ev.get("model"), Tally()).add(ev)
    limits = ws.config.limits
    return {
        "agent": agent,
        "since": since.isoformat() if since else None,
        "total": total.as_json(prices),
        "agents": [
            {"agent": name, **t.as_json(prices)} for name, t in sorted(agents.items(), key=lambda kv: str(kv[0]))
        ],
        "chains": [
            {
                "chain_id": cid,
                **chain_info.get(cid, {"started_at": None, "body": None}),
                "agents": sorted(map(str, names)),
                **t.as_json(prices),
            }
            for cid, (t, names) in chains.items()
        ],
        "models": [
            {"model": m, "priced": m in prices, **t.as_json(prices)}
            for m, t in sorted(models.items(), key=lambda kv: str(kv[0]))
        ],
        "budgets": {"chain_token_budget": limits.chain_token_budget, "agent_token_budget": limits.agent_token_budget},
    }


# -------------------------------------------------------------------------------------------------- queue

QUEUE_FOLDERS = ("new", "cur", "dead", "corrupt")


def _queue_item(queue: Queue, folder: str, name: str, clock: float) -> dict | None:
    path = queue.dirs[folder] / name
    m = NAME_RE.match(name)
    if name.startswith(".") or name.endswith((".error.json", ".error.txt")):
        return None
    item: dict[str, Any] = {
        "id": m["id"] if m else name,
        "folder": folder,
        "file": name,
        "attempts": int(m["attempts"] or 0) if m else None,
        "sender": None,
        "recipient": None,
        "kind": None,
        "chain_id": None,
        "created_at": None,
        "age_seconds": None,
        "not_before": None,
        "error": None,
    }
    try:
        st = path.stat()
    except FileNotFoundError:
        return None  # claimed or moved while we looked
    try:
        msg = queue.read(path)
        item.update(sender=msg.sender, recipient=msg.recipient, kind=msg.kind, chain_id=msg.chain_id)
        item["created_at"] = msg.created_at.isoformat()
        item["age_seconds"] = round(max(0.0, (now() - msg.created_at).total_seconds()), 1)
    except (OSError, ValueError, UnicodeDecodeError):
        item["age_seconds"] = round(max(0.0, clock - st.st_mtime), 1)
    if folder == "new" and item["attempts"] and st.st_mtime > clock:
        item["not_before"] = datetime.fromtimestamp(st.st_mtime, UTC).isoformat()
    if folder == "dead":
        note = _dead_note(queue, item["id"])
        item["error"] = note.get("error")
        item["attempts"] = note.get("attempts", item["attempts"])
    elif folder == "corrupt":
        with contextlib.suppress(OSError):
            item["error"] = (queue.dirs["corrupt"] / f"{name}.error.txt").read_text().strip()
    return item


def _dead_note(queue: Queue, message_id: str) -> dict:
    try:
        note = json.loads((queue.dirs["dead"] / f"{message_id}.error.json").read_text())
    except (OSError, ValueError):
        return {}
    return note if isinstance(note, dict) else {}


def queue_items(ws: Workspace, folders: Iterable[str] = QUEUE_FOLDERS) -> list[dict]:
    """Every message file in the queue, oldest first within each folder."""
    queue, clock = Queue(ws.queue_dir), time.time()
    items: list[dict] = []
    for folder in folders:
        try:
            names = sorted(os.listdir(queue.dirs[folder]))
        except FileNotFoundError:
            continue
        items.extend(i for n in names if (i := _queue_item(queue, folder, n, clock)) is not None)
    return items


def queue_item(ws: Workspace, ref: str) -> dict:
    """One message in the queue (by id or a unique prefix), with its full JSON and its error."""
    ref = clean_ref(ref)
    found = [i for i in queue_items(ws) if matches(i["id"], ref)]
    if not found:
        raise NotFound(f"no message {ref!r} in the queue ({ws.queue_dir})")
    if len({i["id"] for i in found}) > 1:
        raise UsageError(f"{ref!r} matches {len(found)} messages; give more of the id")
    item = found[0]
    path = Queue(ws.queue_dir).dirs[item["folder"]] / item["file"]
    try:
        item["message"] = json.loads(path.read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        item["message"] = None
    item["path"] = str(path)
    return item


def requeue_dead(ws: Workspace, ref: str) -> dict:
    """Give a dead letter another chance: new/<id>.json with its attempts reset.

    Safe while a scheduler runs: the dead turn record goes first (else the scheduler would find it and
    dead-letter the message again at once), then one atomic rename publishes the message to new/.
    """
    item = queue_item(ws, ref)
    if item["folder"] != "dead":
        raise Conflict(f"message {item['id']} is in {item['folder']}/, not dead/; only dead letters can be retried")
    mid = item["id"]
    record = TurnRecords(ws.turns_dir).get(mid)
    if record is not None and record.status == "dead":
        TurnRecords(ws.turns_dir).path(mid).unlink()
    Queue(ws.queue_dir).setup().requeue_dead(mid)
    Trace(ws.trace_path).emit("requeue", message_id=mid, chain_id=item["chain_id"], agent=item["recipient"], by="cli")
    return {"message_id": mid, "from": "dead", "to": "new", "attempts": 0}


def purge_dead(ws: Workspace) -> list[str]:
    """Delete every dead letter and its error note. Their turn records (status dead) stay as the proof."""
    return Queue(ws.queue_dir).purge_dead()


# ------------------------------------------------------------------------------------------------- status


def scheduler_pid(ws: Workspace) -> int | None:
    try:
        return int((ws.state_dir / "scheduler.pid").read_text())
    except (OSError, ValueError):
        return None


def status(ws: Workspace) -> dict:
    from letta_cli.app.messaging import scheduler_running

    running = ws.state_dir.is_dir() and scheduler_running(ws)
    depths = Queue(ws.queue_dir).depths()
    last = tail(ws.trace_path, 16 * 1024)
    return {
        "workspace": str(ws.root),
        "scheduler": {"running": running, "pid": scheduler_pid(ws) if running else None},
        "queue": depths,
        "dead_letters": depths["dead"],
        "agents": len(AgentStore(ws).names()),
        "last_activity": last[-1].get("ts") if last else None,
        "last_event": last[-1].get("event") if last else None,
    }


def ago(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if seconds >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


__all__ = [
    "Follower",
    "chain_tree",
    "find_chain",
    "group_turns",
    "history_lines",
    "last_chain",
    "parse_since",
    "purge_dead",
    "queue_item",
    "queue_items",
    "render_turn",
    "requeue_dead",
    "short_id",
    "status",
    "usage",
]
