"""Token usage and estimated cost per agent, per chain, per model and in all, summed from the trace's
model_call events; and the --since times it can be limited to. Reads only."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from letta_cli.app.trace_view import events
from letta_cli.core.errors import NotFound, UsageError
from letta_cli.core.ids import now
from letta_cli.core.text import clip
from letta_cli.store.agents import AgentStore
from letta_cli.store.workspace import Workspace

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
        raise UsageError(f"{text!r}: give an ISO time (2025-01-31T09:00) or an age like 30s, 10m, 2h, 1d, 1w") from None
    return when if when.tzinfo else when.astimezone()


def _ts(ev: dict[str, Any]) -> datetime | None:
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

    def add(self, ev: dict[str, Any]) -> None:
        p, c = int(ev.get("prompt_tokens") or 0), int(ev.get("completion_tokens") or 0)
        self.prompt_tokens += p
        self.completion_tokens += c
        self.model_calls += 1
        per = self.by_model.setdefault(str(ev.get("model")), [0, 0])
        per[0] += p
        per[1] += c

    def as_json(self, prices: dict[str, Any]) -> dict[str, Any]:
        priced = [(m, t) for m, t in self.by_model.items() if m in prices]
        cost = sum(t[0] * prices[m].prompt + t[1] * prices[m].completion for m, t in priced) / 1e6
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "model_calls": self.model_calls,
            "cost_usd": round(cost, 6) if priced else None,
        }


def usage(ws: Workspace, agent: str | None = None, since: datetime | None = None) -> dict[str, Any]:
    """Tokens, model calls and estimated cost per agent, per chain and in all, summed from model_call
    events: every call counts, including nested wait-for-reply turns and attempts that were retried.
    NotFound for an `agent` that has neither usage nor a definition."""
    prices = ws.config.prices
    total = Tally()
    agents: dict[Any, Tally] = {}
    chains: dict[Any, tuple[Tally, set[Any]]] = {}
    models: dict[Any, Tally] = {}
    chain_info: dict[Any, dict[str, Any]] = {}
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
    if agent is not None and not agents and not AgentStore(ws).exists(agent):
        raise NotFound(f"no agent named {agent!r} and no usage for it")
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
