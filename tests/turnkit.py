"""Running turns in-process, against the scripted model server through the real openai SDK:

- one turn: run_turn with a stub Runtime (the protocol of letta_cli.ports, without a scheduler), e.g.
      rt = StubRuntime(answer=lambda m: reply(m, "pong"))
      record = turn(ws, llm, "alice", "hi", runtime=rt)
- a whole exchange: `send`, what `agents send` does (publish, then serve the queue until answered) through the
  same library calls, without paying a Python start-up and the openai import per command.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from letta_cli.app.agents import new_agent
from letta_cli.core.models import AgentDef, Block, Message, TurnRecord, Usage
from letta_cli.engine.turn import run_turn
from letta_cli.model.client import ModelClient
from letta_cli.model.endpoint import Endpoint
from letta_cli.ports import TurnContext
from letta_cli.store.agents import AgentStore
from letta_cli.store.blocks import BlockStore
from letta_cli.store.trace import Trace
from letta_cli.store.workspace import Workspace
from tests.fakellm import FakeLLM

Answer = Callable[[Message], TurnRecord | str]


def reply(message: Message, *texts: str, status: str = "ok", error: str | None = None) -> TurnRecord:
    """The record of the target's turn, as the scheduler would hand it to a waiting turn."""
    return TurnRecord(
        message_id=message.id,
        agent=message.recipient,
        sender=message.sender,
        chain_id=message.chain_id,
        status=status,  # type: ignore[arg-type]
        reply=list(texts),
        error=error,
    )


class StubRuntime:
    """letta_cli.ports.Runtime with no scheduler behind it: requests are answered by `answer`, tokens are
    counted, and `budget` (total tokens) raises like a chain budget would."""

    def __init__(self, answer: Answer | None = None, budget: int | None = None):
        self.answer = answer or (lambda m: reply(m, f"ok from {m.recipient}"))
        self.budget = budget
        self.sent: list[Message] = []
        self.limits: list[int] = []
        self.tokens = 0
        self.in_slot = 0
        self.slots_taken = 0

    @contextlib.asynccontextmanager
    async def model_slot(self) -> AsyncIterator[None]:
        self.in_slot += 1
        self.slots_taken += 1
        try:
            yield
        finally:
            self.in_slot -= 1

    def charge(self, ctx: TurnContext, usage: Usage) -> None:
        self.tokens += usage.total_tokens
        if self.budget is not None and self.tokens > self.budget:
            raise BudgetSpent(f"stub budget ({self.budget}) exceeded")

    async def request(self, ctx: TurnContext, message: Message) -> TurnRecord:
        outcome = (await self.gather(ctx, [message], 1))[0]
        if isinstance(outcome, str):
            from letta_cli.core.errors import ToolError

            raise ToolError(outcome)
        return outcome

    async def gather(self, ctx: TurnContext, messages: list[Message], limit: int) -> list[TurnRecord | str]:
        self.sent += messages
        self.limits.append(limit)
        return [self.answer(m) for m in messages]


class BudgetSpent(Exception):
    pass


def send(root: Path, agent: str, body: str, timeout: float = 30) -> TurnRecord:
    """`agents send AGENT BODY` in-process: its record (the CLI prints "\n".join(record.reply))."""
    from letta_cli.app import messaging

    ws = Workspace(root.resolve())
    [msg] = messaging.publish(ws, [agent], body)
    return messaging.wait(ws, [msg.id], timeout)[msg.id]


def small_workspace(root: Path) -> Workspace:
    """alice: a private `persona` and the shared `team` block, tags lead+crew; bob: tag crew, no blocks."""
    (root / "agents.d").mkdir(parents=True, exist_ok=True)
    ws = Workspace(root)
    BlockStore(ws).create(Block(label="team", value="Goal: ship v1", description="The team's notes", limit=200))
    agents = AgentStore(ws)
    agents.save(
        new_agent(
            "alice",
            system="You are Alice, a careful planner.",
            description="plans the work",
            tags=["lead", "crew"],
            memory={"persona": "I am Alice."},
            shared=["team"],
        )
    )
    agents.save(new_agent("bob", tags=["crew"]))
    return ws


def context(ws: Workspace, agent: AgentDef | str, body: str, runtime: StubRuntime, **message) -> TurnContext:
    if isinstance(agent, str):
        agent = AgentStore(ws).get(agent)
    msg = Message(recipient=agent.name, body=body, **message)
    limits = agent.effective_limits(ws.config.limits)
    return TurnContext(ws, runtime, agent, msg, limits, 1, Trace(ws.trace_path))


async def _run(ctx: TurnContext, llm: FakeLLM) -> TurnRecord:
    client = ModelClient(timeout=5, retries=0)
    try:
        return await run_turn(ctx, client, Endpoint("fake-model", llm.url, "sk-test-fake"))
    finally:
        await client.close()


def run(ctx: TurnContext, llm: FakeLLM) -> TurnRecord:
    return asyncio.run(_run(ctx, llm))


def turn(
    ws: Workspace, llm: FakeLLM, agent: str, body: str, runtime: StubRuntime | None = None, **message
) -> TurnRecord:
    return run(context(ws, agent, body, runtime or StubRuntime(), **message), llm)
