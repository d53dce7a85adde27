"""The built-in tools, in the order the model is offered them: Letta's send_message, its memory tools and its
three cross-agent tools; and which of them an agent has."""

from __future__ import annotations

from letta_cli.tools.base import Tool

_REGISTRY: dict[str, Tool] | None = None


def builtin_tools() -> dict[str, Tool]:
    global _REGISTRY
    if _REGISTRY is None:
        # the tools' pydantic models are built on first use: commands that never run a turn skip that cost
        from letta_cli.tools import memory, messaging

        tools = [messaging.SEND_MESSAGE, *memory.MEMORY_TOOLS.values(), *messaging.MESSAGING_TOOLS]
        _REGISTRY = {t.name: t for t in tools}
    return _REGISTRY


def enabled_tools(agent_tools: list[str] | None, disabled: list[str]) -> dict[str, Tool]:
    registry = builtin_tools()
    names = list(registry) if agent_tools is None else [n for n in agent_tools if n in registry]
    return {n: registry[n] for n in names if n not in disabled}
