"""What a turn and its tools see of the runtime that runs them: a TurnContext (this turn's agent, message,
limits and what it has collected so far) and the Runtime protocol (model-call slots, budgets, and awaiting
other agents' replies).

The scheduler implements Runtime; tests pass a stub. This is the only thing tools and turns know of the
engine, so they can be run in-process without a scheduler. May import core and store only.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from letta_cli.core.config import Limits
from letta_cli.core.models import AgentDef, Message, TurnRecord, Usage
from letta_cli.store.trace import Trace
from letta_cli.store.workspace import Workspace

T = TypeVar("T")


class Runtime(Protocol):
    def model_slot(self) -> AbstractAsyncContextManager[None]:
        """Held around each model call: bounds how many are in flight at once."""
        ...

    def charge(self, ctx: TurnContext, usage: Usage) -> None:
        """Count a model call's tokens against the chain's budgets; raises to stop the chain."""
        ...

    async def request(self, ctx: TurnContext, message: Message) -> TurnRecord:
        """Send a request and suspend the calling turn until the target's turn ends."""
        ...

    async def gather(self, ctx: TurnContext, messages: list[Message], limit: int) -> list[TurnRecord | str]:
        """Send requests, at most `limit` outstanding, and collect each reply (or an error text)."""
        ...


@dataclass
class TurnContext:
    ws: Workspace
    runtime: Runtime
    agent: AgentDef
    message: Message
    limits: Limits
    attempts: int
    trace: Trace
    replies: list[str] = field(default_factory=list)
    outbox: list[Message] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    env: Mapping[str, str] | None = None  # the environment of the caller who sent this chain (None: ours)
    _seq: int = 0
    _edits: int = 0
    _once: dict[str, Any] = field(default_factory=dict)

    def once(self, key: str, compute: Callable[[], T]) -> T:
        """`compute()`, run once per turn: the agent names that three tool schemas list are read once."""
        if key not in self._once:
            self._once[key] = compute()
        return self._once[key]  # type: ignore[no-any-return]

    def next_seq(self) -> int:
        self._seq += 1
        return self._seq - 1

    def edit_key(self, tool: str, args: dict[str, Any]) -> str:
        """Names one memory edit of this turn: a replay making the same call is a no-op, a different call
        (models are not deterministic) is a new edit."""
        self._edits += 1
        call = hashlib.blake2b(json.dumps([tool, args], sort_keys=True, default=str).encode(), digest_size=6)
        return f"{self.message.id}:{self._edits}:{call.hexdigest()}"
