"""One agent turn: build the prompt, call the model, run tool calls, repeat until a plain answer.

Nothing here touches the history or the queue: the turn's effects are collected into a TurnRecord, which the
scheduler commits atomically and then applies. Memory edits happen at once (other agents must see them
mid-turn) and are keyed by (message, tool call) so a replayed turn does not apply them twice.
"""

from __future__ import annotations

import time
from typing import Any

from letta_cli.core.errors import ToolError
from letta_cli.core.faults import crashpoint
from letta_cli.core.ids import now
from letta_cli.core.models import HistoryEntry, TurnRecord
from letta_cli.core.text import clip
from letta_cli.engine.prompt import system_messages
from letta_cli.model.client import ModelClient
from letta_cli.model.endpoint import Endpoint
from letta_cli.ports import TurnContext
from letta_cli.store import history
from letta_cli.tools.base import Tool
from letta_cli.tools.command import custom_tools
from letta_cli.tools.messaging import inbound_text
from letta_cli.tools.registry import enabled_tools

MAX_RESULT_CHARS = 8000  # of one tool result, as the model reads it


def entry(ctx: TurnContext, seq: int, role: str, **fields: Any) -> HistoryEntry:
    return HistoryEntry(turn_id=ctx.message.id, seq=seq, role=role, **fields)


async def run_turn(ctx: TurnContext, client: ModelClient, endpoint: Endpoint) -> TurnRecord:
    started_at = now()
    agent, limits = ctx.agent, ctx.limits
    tools = enabled_tools(agent.tools, agent.disabled_tools) | custom_tools(ctx.ws, agent)
    schemas = [t.offer(ctx) for t in tools.values()]
    offer_tools = True
    terminal = set(agent.tool_rules.terminal)
    past = [
        e.to_chat()
        for e in history.window(ctx.ws.history_file(agent.name), limits.history_messages, limits.history_chars)
    ]
    entries = [entry(ctx, 0, "user", content=inbound_text(ctx.message), sender=ctx.message.sender)]
    error: str | None = None

    for step in range(limits.max_steps):
        request = [*system_messages(ctx.ws, agent), *past, *(e.to_chat() for e in entries)]
        if step == limits.max_steps - 1 and step > 0:
            offer_tools = False  # the last step: ask for an answer rather than end on the step limit
        tool_choice: Any = "auto"
        first = ctx.message.force_tool or agent.tool_rules.first
        if step == 0 and first in tools:
            tool_choice = {"type": "function", "function": {"name": first}}
        if not offer_tools:  # the tools stay in the request (its prefix stays the same), but none may be called
            tool_choice = "none"
        async with ctx.runtime.model_slot():
            result = await client.complete(
                endpoint, request, schemas, tool_choice, agent.temperature, limits.max_tokens
            )
        crashpoint("after_model_call")
        ctx.usage.add(result.usage)
        ctx.trace.emit(
            "model_call",
            message_id=ctx.message.id,
            chain_id=ctx.message.chain_id,
            agent=agent.name,
            step=step,
            model=endpoint.model,
            prompt_tokens=result.usage.prompt_tokens,
            cached_tokens=result.cached_tokens,
            completion_tokens=result.usage.completion_tokens,
            duration_ms=round(result.duration * 1000),
            tool_calls=[c["function"]["name"] for c in result.tool_calls],
            attempt=ctx.attempts,
        )
        ctx.runtime.charge(ctx, result.usage)
        if not result.tool_calls:
            text = (result.content or "").strip()
            if not text and offer_tools and schemas and step + 1 < limits.max_steps:
                offer_tools = False  # small models often answer "auto" with nothing: ask once more, for text
                continue
            entries.append(entry(ctx, len(entries), "assistant", content=text))
            if text:
                ctx.replies.append(text)
            break
        entries.append(
            entry(ctx, len(entries), "assistant", content=result.content or "", tool_calls=result.tool_calls)
        )
        ends = False
        for call in result.tool_calls:
            name = call["function"]["name"]
            output, failed = await run_tool(ctx, tools, name, call["function"]["arguments"])
            entries.append(entry(ctx, len(entries), "tool", content=output, tool_call_id=call["id"], name=name))
            ends = ends or (name in terminal and not failed)
        if ends:
            break
    else:
        error = f"step limit reached ({limits.max_steps} model calls) before a final answer"

    return TurnRecord(
        message_id=ctx.message.id,
        agent=agent.name,
        sender=ctx.message.sender,
        chain_id=ctx.message.chain_id,
        status="error" if error else "ok",
        reply=ctx.replies,
        error=error,
        usage=ctx.usage,
        started_at=started_at,
        ended_at=now(),
        attempts=ctx.attempts,
        history=[e.model_dump(mode="json", exclude_none=True) for e in entries],
        outbox=ctx.outbox,
    )


async def run_tool(ctx: TurnContext, tools: dict[str, Tool], name: str, raw_args: str) -> tuple[str, bool]:
    """Run one tool call; every mistake of the model becomes a tool error it can read and correct."""
    started = time.monotonic()
    failed = True
    try:
        tool = tools.get(name)
        if tool is None:
            raise ToolError(f"unknown tool {name!r}; available: {', '.join(tools) or 'none'}")
        output = await tool.run(ctx, tool.validate(raw_args))
        failed = False
    except ToolError as exc:
        output = f"Error: {exc}"
        extra = getattr(exc, "trace", None)
    else:
        extra = getattr(output, "trace", None)  # a command tool's exit code, duration, replayed
    output = clip(output, MAX_RESULT_CHARS, "more chars cut")
    ctx.trace.emit(
        "tool_call",
        message_id=ctx.message.id,
        chain_id=ctx.message.chain_id,
        agent=ctx.agent.name,
        tool=name,
        arguments=clip(raw_args, 500),
        result=clip(output, 500),
        error=failed,
        duration_ms=round((time.monotonic() - started) * 1000),
        **(extra or {}),
    )
    return output, failed
