"""Memory blocks as library calls: what `agents blocks ...` and `agents memory NAME` do.

Every edit goes through BlockStore.edit (the block's lock, read-only and limit checks, the change log), the
same path the agents' memory tools take; appending uses the memory tool's own edit.
"""

from __future__ import annotations

from typing import Any

from letta_cli.core import memory_edits
from letta_cli.core.errors import InvalidFile
from letta_cli.core.models import Block, BlockEdit
from letta_cli.core.names import check_name
from letta_cli.engine.prompt import render_memory
from letta_cli.store.blocks import BlockAttached, BlockStore, EditRefused, MissingSharedBlock
from letta_cli.store.workspace import Workspace

__all__ = [  # the errors are what these calls raise; the CLI adds which command fixes each
    "BlockAttached",
    "EditRefused",
    "MissingSharedBlock",
    "append",
    "attach",
    "attached_agents",
    "block_json",
    "create",
    "delete",
    "detach",
    "get",
    "list_blocks",
    "log",
    "memory",
    "set_block",
]

ACTOR = "cli"  # who the change log says made a person's edits


def block_json(ws: Workspace, block: Block) -> dict[str, Any]:
    """A block as --json shows it: its fields, its size, whether it is shared, and its file."""
    data = block.model_dump(mode="json")
    data["chars"] = len(block.value)
    data["shared"] = block.owner is None
    data["path"] = str(BlockStore(ws).path(block.label, block.owner))
    return data


def memory(ws: Workspace, name: str) -> tuple[list[Block], str]:
    """What agent `name` sees of its memory: its blocks, and the memory section of its system prompt."""
    store = BlockStore(ws)
    blocks = store.for_agent(store.agents.get(name))
    return blocks, render_memory(blocks)


def list_blocks(
    ws: Workspace, *, every_agent: bool = False, agent: str | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Shared blocks (each with the agents it is attached to), then the private blocks of every agent or of
    `agent`; and one error line per file that does not parse."""
    store = BlockStore(ws)
    blocks, errors = store.scan_shared()
    report = store.agents.load_all()
    attached = {b.label: [a.name for a in report.agents if b.label in a.memory.shared] for b in blocks}
    owners = [a for a in report.agents if every_agent or a.name == agent]
    if agent is not None and not owners:
        store.agents.get(agent)  # a clear NotFound (or the agent file's own error)
    for owner in owners:
        for label in owner.memory.blocks:
            try:
                blocks.append(store.block_for(owner, label))
            except InvalidFile as exc:
                errors.append(str(exc))
    rows = [{**block_json(ws, b), "attached": attached.get(b.label, [])} for b in blocks]
    return rows, errors


def _target(store: BlockStore, label: str, agent: str | None) -> Block:
    """The shared block LABEL, or with `agent` the one that agent sees (a private one is created from the
    agent's definition on first use)."""
    if agent is None:
        return store.get(label)
    return store.block_for(store.agents.get(agent), label)


def get(ws: Workspace, label: str, agent: str | None = None) -> Block:
    """The shared block LABEL, or with `agent` the block that agent sees as LABEL (private or shared)."""
    return _target(BlockStore(ws), label, agent)


def attached_agents(ws: Workspace, label: str) -> list[str]:
    return BlockStore(ws).attached_agents(label)


def create(
    ws: Workspace,
    label: str,
    value: str = "",
    *,
    limit: int | None = None,
    description: str | None = None,
    read_only: bool = False,
) -> Block:
    """A new shared block. EditRefused (kind "limit") if the value is over the limit."""
    check_name(label, "block label")
    fields = {k: v for k, v in {"limit": limit, "description": description}.items() if v is not None}
    return BlockStore(ws).create(Block(label=label, value=value, read_only=read_only, **fields), actor=ACTOR)


def set_block(
    ws: Workspace,
    label: str,
    value: str | None = None,
    *,
    agent: str | None = None,
    limit: int | None = None,
    description: str | None = None,
    read_only: bool | None = None,
    force: bool = False,
) -> Block:
    """Replace the value and/or change the settings. A read-only block's value needs force; settings do not."""
    settings = {"limit": limit, "description": description, "read_only": read_only}
    update = {k: v for k, v in settings.items() if v is not None} | ({} if value is None else {"value": value})
    store = BlockStore(ws)
    owner = _target(store, label, agent).owner
    return store.edit(
        label, owner, lambda b: b.model_copy(update=update), actor=ACTOR, tool="set", force=force or value is None
    )


def append(ws: Workspace, label: str, text: str, *, agent: str | None = None, force: bool = False) -> Block:
    """Append a line, as core_memory_append does."""
    store = BlockStore(ws)
    owner = _target(store, label, agent).owner
    return store.edit(label, owner, lambda b: memory_edits.append(b, text), actor=ACTOR, tool="append", force=force)


def attach(ws: Workspace, label: str, agents: list[str]) -> list[str]:
    """List the shared block in each agent's memory; returns the agents that changed."""
    return BlockStore(ws).attach(label, agents)


def detach(ws: Workspace, label: str, agents: list[str]) -> list[str]:
    """Remove the shared block from each agent's memory; returns the agents that changed."""
    return BlockStore(ws).detach(label, agents)


def delete(ws: Workspace, label: str, *, force: bool = False) -> list[str]:
    """Delete a shared block; BlockAttached while agents list it, unless force (then: the agents that do)."""
    return BlockStore(ws).delete(label, force=force)


def log(ws: Workspace, label: str, agent: str | None = None) -> list[BlockEdit]:
    """The block's change log: when, who, which tool, size before and after."""
    store = BlockStore(ws)
    return store.log(label, _target(store, label, agent).owner)
