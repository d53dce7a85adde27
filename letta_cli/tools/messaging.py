"""Letta's messaging tools: send_message (to whoever the agent is talking to) and the three cross-agent tools,
with Letta's names, parameters, prefixes and return shapes: one arguments model per tool, and the schema
narrowing that lists the agent ids and tags that exist.

Async messages go into the turn's outbox and are published only when the turn commits. Requests and
broadcasts go through the turn's Runtime (request, gather), which publishes them and suspends the turn until
the replies come, refusing a wait that would close a waits-for cycle.
"""

from __future__ import annotations

import difflib
import json
from typing import Annotated, Any

from pydantic import Field, field_validator

from letta_cli.core.errors import ToolError
from letta_cli.core.ids import derived_id
from letta_cli.core.models import Message, MessageKind
from letta_cli.core.names import is_valid_name
from letta_cli.ports import TurnContext
from letta_cli.store.agents import AgentStore
from letta_cli.tools.base import Arguments, Tool

ASYNC_PREFIX = (
    "[Incoming message from agent with ID '{sender}' - this is a one-way notification; if you need to "
    "respond, use an agent-to-agent messaging tool if available] "
)
REQUEST_PREFIX = "[Incoming message from agent with ID '{sender}' - your response will be delivered to the sender] "
SENT = "Successfully sent message"


def inbound_text(message: Message) -> str:
    """What the receiving model sees: Letta's prefix for messages from agents, the plain text from a person."""
    if message.sender == "user":
        return message.body
    prefix = ASYNC_PREFIX if message.kind == "async" else REQUEST_PREFIX
    return prefix.format(sender=message.sender) + message.body


def resolve_agent(ctx: TurnContext, other: str) -> str:
    names = AgentStore(ctx.ws).names()
    if not is_valid_name(other) or other not in names:
        close = difflib.get_close_matches(other, names, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known agents: {', '.join(names[:20])}"
        raise ToolError(f"no agent with id {other!r}{hint}")
    return other


def outgoing(ctx: TurnContext, recipient: str, body: str, kind: MessageKind) -> Message:
    """A message from this turn, with a deterministic id (a replayed turn re-sends the same ids)."""
    hop = ctx.message.hop + 1
    if hop > ctx.limits.hop_limit:
        raise ToolError(
            f"not sent: this conversation has reached the hop limit ({ctx.limits.hop_limit} agent-to-agent "
            "messages in a row); answer without messaging other agents"
        )
    return Message(
        id=derived_id(ctx.message.id, ctx.next_seq()),
        sender=ctx.agent.name,
        recipient=recipient,
        body=body,
        kind=kind,
        chain_id=ctx.message.chain_id,
        hop=hop,
        parent_id=ctx.message.id,
        reply_to=ctx.message.id if kind in ("request", "broadcast") else None,
    )


MessageText = Annotated[str, Field(description="The message.")]
AgentId = Annotated[str, Field(description="The other agent's id.")]


class Reply(Arguments):
    message: MessageText


async def send_message(ctx: TurnContext, args: Reply) -> str:
    ctx.replies.append(args.message)
    return "Sent message successfully."


class ToAgent(Arguments):
    message: MessageText
    other_agent_id: AgentId


class ToTags(Arguments):
    message: MessageText
    tags: Annotated[list[str], Field(description="Tags to match.")]

    @field_validator("tags", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        """Small models often send "a,b" for ["a", "b"]."""
        return [t.strip() for t in value.split(",") if t.strip()] if isinstance(value, str) else value


async def send_message_to_agent_async(ctx: TurnContext, args: ToAgent) -> str:
    target = resolve_agent(ctx, args.other_agent_id)
    ctx.outbox.append(outgoing(ctx, target, args.message, "async"))
    return SENT


async def send_message_to_agent_and_wait_for_reply(ctx: TurnContext, args: ToAgent) -> str:
    target = resolve_agent(ctx, args.other_agent_id)
    if target == ctx.agent.name:
        raise ToolError("you cannot wait for a reply from yourself: that would deadlock")
    record = await ctx.runtime.request(ctx, outgoing(ctx, target, args.message, "request"))
    if record.status != "ok":
        raise ToolError(f"agent {target!r} could not answer: {record.error or record.status}")
    return json.dumps({"agent_id": target, "response": record.reply or ["<no response>"]}, ensure_ascii=False)


async def send_message_to_agents_matching_all_tags(ctx: TurnContext, args: ToTags) -> str:
    if not args.tags:
        raise ToolError("argument 'tags' is empty: give at least one tag (an empty list matches nobody)")
    matched = [a.name for a in AgentStore(ctx.ws).matching(args.tags).agents if a.name != ctx.agent.name]
    messages = [outgoing(ctx, name, args.message, "broadcast") for name in matched]
    results = await ctx.runtime.gather(ctx, messages, ctx.limits.broadcast_concurrency)
    out: list[dict[str, Any]] = []
    for message, outcome in zip(messages, results, strict=True):
        if isinstance(outcome, str):
            out.append({"agent_id": message.recipient, "error": outcome})
        elif outcome.status != "ok":
            out.append({"agent_id": message.recipient, "error": outcome.error or outcome.status})
        else:
            out.append({"agent_id": message.recipient, "response": outcome.reply or ["<no response>"]})
    return json.dumps(out, ensure_ascii=False)


# Characters of ids (and of tags) listed in schemas; above these the lists cost more tokens than they save.
ENUM_MAX_ID_CHARS = 96
ENUM_MAX_TAG_CHARS = 48


def narrow_schema(ctx: TurnContext, schema: dict[str, Any]) -> dict[str, Any]:
    """Constrain `other_agent_id` to the agents that exist (not the caller) and `tags` to tags in use."""
    store = AgentStore(ctx.ws)
    names = ctx.once("agent names", store.names)
    if sum(len(n) + 4 for n in names) > ENUM_MAX_ID_CHARS:
        return schema
    others = [n for n in names if n != ctx.agent.name]
    props = dict(schema["function"]["parameters"]["properties"])
    if "other_agent_id" in props and others:
        props["other_agent_id"] = {**props["other_agent_id"], "enum": others}
    if "tags" in props:
        tags = sorted({t for a in store.load_all().agents if a.name != ctx.agent.name for t in a.tags})
        if tags and sum(len(t) + 4 for t in tags) <= ENUM_MAX_TAG_CHARS:
            props["tags"] = {**props["tags"], "items": {"type": "string", "enum": tags}}
    fn = schema["function"]
    return {**schema, "function": {**fn, "parameters": {**fn["parameters"], "properties": props}}}


SEND_MESSAGE = Tool.typed(
    "send_message", "Send a message to whoever you are talking to; ends your turn.", Reply, send_message
)
MESSAGING_TOOLS: list[Tool] = [
    Tool.typed(
        "send_message_to_agent_async",
        "Send a one-way message to another agent; returns at once.",
        ToAgent,
        send_message_to_agent_async,
        narrow_schema,
    ),
    Tool.typed(
        "send_message_to_agent_and_wait_for_reply",
        "Send a message to another agent and wait for its reply.",
        ToAgent,
        send_message_to_agent_and_wait_for_reply,
        narrow_schema,
    ),
    Tool.typed(
        "send_message_to_agents_matching_all_tags",
        "Send a message to every agent having ALL the tags and collect their replies.",
        ToTags,
        send_message_to_agents_matching_all_tags,
        narrow_schema,
    ),
]
