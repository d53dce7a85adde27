"""Letta's memory tools: one arguments model per tool (its schema, its validation and the edit it makes, from
letta_cli.core.memory_edits), run through BlockStore.edit so every change is one locked read-modify-write."""

from __future__ import annotations

from typing import Annotated, Any, cast

from pydantic import AliasChoices, Field

from letta_cli.core import memory_edits
from letta_cli.core.errors import NotFound, ToolError
from letta_cli.core.models import AgentDef, Block
from letta_cli.ports import TurnContext
from letta_cli.store.blocks import BlockStore, EditRefused
from letta_cli.store.workspace import Workspace
from letta_cli.tools.base import Arguments, Tool


class MemoryEdit(Arguments):
    label: Annotated[str, Field(description="Label of the memory block.")]

    def apply(self, block: Block) -> str:
        """The block's new value, or a ToolError saying why the edit cannot be made."""
        raise NotImplementedError


NEW_STRING = AliasChoices("new_string", "new_str")  # Letta's earlier parameter names are still accepted
OLD_STRING = AliasChoices("old_string", "old_str")


class CoreMemoryAppend(MemoryEdit):
    content: Annotated[str, Field(description="Text to append.", min_length=1)]  # appending nothing is no edit

    def apply(self, block: Block) -> str:
        return memory_edits.append(block, self.content)


class CoreMemoryReplace(MemoryEdit):
    old_content: Annotated[str, Field(description="Exact text to replace.")]
    new_content: Annotated[str, Field(description="Replacement text.")]

    def apply(self, block: Block) -> str:
        return memory_edits.replace_all(block, self.old_content, self.new_content)


class MemoryInsert(MemoryEdit):
    new_string: Annotated[str, Field(description="Text to insert.", validation_alias=NEW_STRING)]
    insert_line: Annotated[
        int, Field(description="Line number to insert after: 0 = beginning, -1 (default) = end.")
    ] = -1

    def apply(self, block: Block) -> str:
        return memory_edits.insert(block, self.new_string, self.insert_line)


class MemoryReplace(MemoryEdit):
    old_string: Annotated[
        str, Field(description="Exact text to replace; must occur exactly once.", validation_alias=OLD_STRING)
    ]
    new_string: Annotated[str, Field(description="Replacement text (empty to delete).", validation_alias=NEW_STRING)]

    def apply(self, block: Block) -> str:
        return memory_edits.replace_unique(block, self.old_string, self.new_string)


class MemoryRethink(MemoryEdit):
    new_memory: Annotated[str, Field(description="The block's complete new contents.")]

    def apply(self, block: Block) -> str:
        return self.new_memory


def edit_memory(ws: Workspace, agent: AgentDef, tool: str, args: MemoryEdit, *, edit_key: str | None = None) -> str:
    """Make one validated memory edit for `agent`. Every refusal is a ToolError whose text goes to the model."""
    store = BlockStore(ws)
    try:
        owner = store.locate(agent, args.label)
        block = store.edit(args.label, owner, args.apply, actor=agent.name, tool=tool, edit_key=edit_key)
    except EditRefused as exc:
        hint = "; shorten the text, or condense the block with memory_rethink" if exc.kind == "limit" else ""
        raise ToolError(f"Edit refused: {exc}{hint}") from None
    except NotFound as exc:
        raise ToolError(str(exc)) from None
    return f"Memory block '{args.label}' updated ({len(block.value)}/{block.limit} chars)."


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


def _memory_tool(name: str, description: str, arguments: type[MemoryEdit]) -> Tool:
    async def run(ctx: TurnContext, args: MemoryEdit) -> str:
        return edit_memory(ctx.ws, ctx.agent, name, args, edit_key=ctx.edit_key(name, args.model_dump()))

    return Tool.typed(name, description, arguments, run, narrow_label)


MEMORY_TOOLS: dict[str, Tool] = {
    t.name: t
    for t in (
        _memory_tool("core_memory_append", "Append text to a memory block, on a new line.", CoreMemoryAppend),
        _memory_tool(
            "core_memory_replace",
            "Replace every occurrence of old_content in a memory block. Use an empty new_content to delete.",
            CoreMemoryReplace,
        ),
        _memory_tool("memory_insert", "Insert text into a memory block after a given line.", MemoryInsert),
        _memory_tool(
            "memory_replace",
            "Replace one exact, unique piece of text in a memory block (for precise edits).",
            MemoryReplace,
        ),
        _memory_tool(
            "memory_rethink",
            "Rewrite a whole memory block (to condense or reorganise it); not for small edits.",
            MemoryRethink,
        ),
    )
}


def run_memory_tool(ws: Workspace, agent: AgentDef, name: str, args: Any, *, edit_key: str | None = None) -> str:
    """One memory tool call from Python, with the arguments as parsed JSON: the validation and the edit a
    turn's call of the tool makes."""
    tool = MEMORY_TOOLS.get(name)
    if tool is None:
        raise ToolError(f"unknown memory tool {name!r}; the memory tools are {', '.join(MEMORY_TOOLS)}")
    return edit_memory(ws, agent, name, cast(MemoryEdit, tool.check(args)), edit_key=edit_key)
