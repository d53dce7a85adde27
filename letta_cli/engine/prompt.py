"""The system prompt of every model call: the agent's prompt, its identity, and its memory blocks, rebuilt for
each call so a block edited by another agent is seen at once."""

from __future__ import annotations

from letta_cli.core.models import AgentDef, Block
from letta_cli.store.blocks import BlockStore
from letta_cli.store.workspace import Workspace

IDENTITY = 'You are agent "{name}" in a multi-agent workspace; other agents address you by this id.'


def system_prompt(ws: Workspace, agent: AgentDef) -> str:
    """Rebuilt for every model call, so a block edited by another agent is seen at once."""
    parts = [agent.system.strip(), IDENTITY.format(name=agent.name)]
    if agent.description:
        parts[-1] += f" Your role: {agent.description}"
    blocks = BlockStore(ws).for_agent(agent)
    if blocks:
        parts.append(render_memory(blocks))
    return "\n\n".join(parts)


def render_memory(blocks: list[Block]) -> str:
    """The memory section of the system prompt, rebuilt for every model call."""
    if not blocks:
        return ""
    lines = [
        "<memory_blocks>",
        'Your memory blocks, always in view; edit them with the memory tools. chars="current/limit".',
    ]
    for b in blocks:
        shared = ' shared="true"' if b.owner is None else ""
        ro = "true" if b.read_only else "false"
        lines.append(f'<block label="{b.label}"{shared} read_only="{ro}" chars="{len(b.value)}/{b.limit}">')
        if b.description:
            lines.append(f"<description>{b.description}</description>")
        lines += ["<value>", b.value, "</value>", "</block>"]
    lines.append("</memory_blocks>")
    return "\n".join(lines)
