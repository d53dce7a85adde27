"""The system prompt of every model call: the agent's prompt and identity, then its memory blocks, rebuilt for
each call so a block edited by another agent is seen at once.

Letta's order: the agent's own instructions first, its memory after them, then the recent history and the new
message. The memory goes in a second system message, shared blocks first and each block's size after its
value, so a server that caches evaluated prompts by their prefix (the local model's does) re-reads, after an
edit, only from the edited text on, and the agent's prompt stays a stable prefix for all its turns. Together
the two messages say what Letta's one system prompt says."""

from __future__ import annotations

from letta_cli.core.models import AgentDef, Block
from letta_cli.store.blocks import BlockStore
from letta_cli.store.workspace import Workspace

IDENTITY = 'You are agent "{name}" in a multi-agent workspace; other agents address you by this id.'


def system_messages(ws: Workspace, agent: AgentDef) -> list[dict[str, str]]:
    """The system messages a request starts with: the agent's own prompt and identity, then the memory blocks
    (if any), read now."""
    messages = [{"role": "system", "content": stable_prompt(agent)}]
    blocks = BlockStore(ws).for_agent(agent)
    if blocks:
        messages.append({"role": "system", "content": render_memory(blocks)})
    return messages


def stable_prompt(agent: AgentDef) -> str:
    """The agent's own prompt and its identity: the same for every call until the agent is edited."""
    identity = IDENTITY.format(name=agent.name)
    if agent.description:
        identity += f" Your role: {agent.description}"
    return f"{agent.system.strip()}\n\n{identity}"


def system_prompt(ws: Workspace, agent: AgentDef) -> str:
    """The whole system prompt as one text (what the two system messages say together)."""
    return "\n\n".join(m["content"] for m in system_messages(ws, agent))


def render_memory(blocks: list[Block]) -> str:
    """The memory section of the system prompt, rebuilt for every model call."""
    if not blocks:
        return ""
    lines = [
        "<memory_blocks>",
        "Your memory blocks, always in view; edit them with the memory tools. <chars> is current/limit.",
    ]
    for b in sorted(blocks, key=lambda b: b.owner is not None):  # shared blocks first: the same for every holder
        shared = ' shared="true"' if b.owner is None else ""
        ro = "true" if b.read_only else "false"
        lines.append(f'<block label="{b.label}"{shared} read_only="{ro}">')
        if b.description:
            lines.append(f"<description>{b.description}</description>")
        # the size after the value: an edit changes the prompt from its own text on, not from the block's top
        lines += ["<value>", b.value, "</value>", f"<chars>{len(b.value)}/{b.limit}</chars>", "</block>"]
    lines.append("</memory_blocks>")
    return "\n".join(lines)
