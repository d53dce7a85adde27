"""Built-in tools: their JSON schemas (Letta's names and parameters) and their handlers.

A handler gets the turn context and the parsed arguments and returns the text the model sees. A ToolError's
message is returned to the model as the tool's result, and the turn goes on.
"""

from __future__ import annotations

from typing import Any

from letta_cli.ports import TurnContext
from letta_cli.tools import memory, messaging
from letta_cli.tools.base import Handler, Tool, function_schema, require_str


async def _send_message(ctx: TurnContext, args: dict[str, Any]) -> str:
    ctx.replies.append(require_str(args, "message"))
    return "Sent message successfully."


def _memory_tool(name: str) -> Handler:
    async def handler(ctx: TurnContext, args: dict[str, Any]) -> str:
        return memory.run_memory_tool(ctx.ws, ctx.agent, name, args, edit_key=ctx.edit_key(name, args))

    return handler


def narrow_label(ctx: TurnContext, schema: dict[str, Any]) -> dict[str, Any]:
    """Constrain a memory tool's `label` to the blocks this agent has (from its definition: no file reads)."""
    memory = ctx.agent.memory
    labels = [label for label, block in memory.blocks.items() if not block.read_only] + list(memory.shared)
    if not labels:
        return schema
    fn = schema["function"]
    props = {**fn["parameters"]["properties"]}
    props["label"] = {**props["label"], "enum": labels}
    return {**schema, "function": {**fn, "parameters": {**fn["parameters"], "properties": props}}}


def _registry() -> dict[str, Tool]:
    tools = [
        Tool(
            "send_message",
            function_schema(
                "send_message",
                "Send a message to whoever you are talking to; ends your turn.",
                {"message": {"type": "string", "description": "The message."}},
                ["message"],
            ),
            _send_message,
        )
    ]
    tools += [Tool(name, schema, _memory_tool(name), narrow_label) for name, schema in memory.MEMORY_TOOLS.items()]
    tools += [
        Tool(name, schema, handler, messaging.narrow_schema)
        for name, (schema, handler) in messaging.MESSAGING_TOOLS.items()
    ]
    return {t.name: t for t in tools}


_REGISTRY: dict[str, Tool] | None = None


def builtin_tools() -> dict[str, Tool]:
    global _REGISTRY
    if _REGISTRY is None:
        _REGISTRY = _registry()
    return _REGISTRY


def enabled_tools(agent_tools: list[str] | None, disabled: list[str]) -> dict[str, Tool]:
    registry = builtin_tools()
    names = list(registry) if agent_tools is None else [n for n in agent_tools if n in registry]
    return {n: registry[n] for n in names if n not in disabled}
