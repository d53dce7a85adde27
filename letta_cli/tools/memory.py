"""Letta's memory tools: schemas, argument checks and the edits they make, through BlockStore.edit."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from letta_cli.core.errors import NotFound, ToolError
from letta_cli.core.models import AgentDef, Block
from letta_cli.store.blocks import BlockStore, EditRefused
from letta_cli.store.workspace import Workspace

_LABEL = {"type": "string", "description": "Label of the memory block."}


def _schema(name: str, description: str, params: dict[str, dict], required: list[str]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": {"label": _LABEL, **params}, "required": required},
        },
    }


MEMORY_TOOLS: dict[str, dict] = {
    "core_memory_append": _schema(
        "core_memory_append",
        "Append text to a memory block, on a new line.",
        {"content": {"type": "string", "description": "Text to append."}},
        ["label", "content"],
    ),
    "core_memory_replace": _schema(
        "core_memory_replace",
        "Replace every occurrence of old_content in a memory block. Use an empty new_content to delete.",
        {
            "old_content": {"type": "string", "description": "Exact text to replace."},
            "new_content": {"type": "string", "description": "Replacement text."},
        },
        ["label", "old_content", "new_content"],
    ),
    "memory_insert": _schema(
        "memory_insert",
        "Insert text into a memory block after a given line.",
        {
            "new_string": {"type": "string", "description": "Text to insert."},
            "insert_line": {
                "type": "integer",
                "description": "Line number to insert after: 0 = beginning, -1 (default) = end.",
            },
        },
        ["label", "new_string"],
    ),
    "memory_replace": _schema(
        "memory_replace",
        "Replace one exact, unique piece of text in a memory block (for precise edits).",
        {
            "old_string": {"type": "string", "description": "Exact text to replace; must occur exactly once."},
            "new_string": {"type": "string", "description": "Replacement text (empty to delete)."},
        },
        ["label", "old_string", "new_string"],
    ),
    "memory_rethink": _schema(
        "memory_rethink",
        "Rewrite a whole memory block (to condense or reorganise it); not for small edits.",
        {"new_memory": {"type": "string", "description": "The block's complete new contents."}},
        ["label", "new_memory"],
    ),
}

_ALIASES = {"old_str": "old_string", "new_str": "new_string"}  # Letta's earlier parameter names
_IGNORED = {"request_heartbeat"}  # sent by models trained on MemGPT-style tools
_JSON_TYPES = {str: "string", int: "integer", float: "number", bool: "boolean", list: "array", dict: "object"}


def _check_args(name: str, args: Any) -> dict[str, Any]:
    if not isinstance(args, dict):
        raise ToolError(f"{name}: the arguments must be a JSON object")
    params = MEMORY_TOOLS[name]["function"]["parameters"]
    props, required = params["properties"], params["required"]
    out: dict[str, Any] = {}
    for key, value in args.items():
        if key in _IGNORED:
            continue
        param = _ALIASES.get(key, key)
        if param not in props:
            raise ToolError(f"{name}: unexpected argument {key!r}; it takes {', '.join(props)}")
        if param != key and param in args:  # both spellings given: the current one wins
            continue
        want = str if props[param]["type"] == "string" else int
        if not isinstance(value, want) or isinstance(value, bool):
            got = "null" if value is None else _JSON_TYPES.get(type(value), type(value).__name__)
            expected = "a string" if want is str else "an integer"
            raise ToolError(f"{name}: argument {key!r} must be {expected}, got {got}")
        out[str(param)] = value
    missing = [k for k in required if k not in out]
    if missing:
        raise ToolError(f"{name}: missing argument{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    return out


def _clip(text: str, n: int = 200) -> str:
    return text if len(text) <= n else text[:n] + "..."


def _append(block: Block, args: dict) -> str:
    return f"{block.value}\n{args['content']}" if block.value else args["content"]


def _core_replace(block: Block, args: dict) -> str:
    old = args["old_content"]
    if not old:
        raise ToolError("old_content must not be empty")
    if old not in block.value:
        raise ToolError(f"Old content '{_clip(old)}' not found in memory block '{block.label}'")
    return block.value.replace(old, args["new_content"])


def _insert(block: Block, args: dict) -> str:
    lines = block.value.split("\n") if block.value else []
    at = args.get("insert_line", -1)
    if at == -1:
        at = len(lines)
    elif not 0 <= at <= len(lines):
        raise ToolError(
            f"Invalid insert_line {at}: use a line number in [0, {len(lines)}], or -1 for the end of the block"
        )
    return "\n".join(lines[:at] + args["new_string"].split("\n") + lines[at:])


def _replace(block: Block, args: dict) -> str:
    old = args["old_string"]
    if not old:
        raise ToolError("old_string must not be empty")
    count = block.value.count(old)
    if count == 0:
        raise ToolError(
            f"No replacement was performed: old_string '{_clip(old)}' does not appear verbatim in "
            f"memory block '{block.label}'"
        )
    if count > 1:
        lines = [i + 1 for i, line in enumerate(block.value.split("\n")) if old in line]
        where = f" (lines {lines})" if lines else ""
        raise ToolError(
            f"No replacement was performed: old_string '{_clip(old)}' occurs {count} times{where} in memory "
            f"block '{block.label}'; include more context so it is unique"
        )
    return block.value.replace(old, args["new_string"])


def _rethink(block: Block, args: dict) -> str:
    return args["new_memory"]


_APPLY: dict[str, Callable[[Block, dict], str]] = {
    "core_memory_append": _append,
    "core_memory_replace": _core_replace,
    "memory_insert": _insert,
    "memory_replace": _replace,
    "memory_rethink": _rethink,
}


def run_memory_tool(ws: Workspace, agent: AgentDef, name: str, args: dict, *, edit_key: str | None = None) -> str:
    """Run one memory tool call for `agent`. Every mistake is a ToolError whose text goes to the model."""
    if name not in _APPLY:
        raise ToolError(f"unknown memory tool {name!r}; the memory tools are {', '.join(MEMORY_TOOLS)}")
    args = _check_args(name, args)
    label, store = args["label"], BlockStore(ws)
    try:
        owner = store.locate(agent, label)
        block = store.edit(
            label, owner, lambda b: _APPLY[name](b, args), actor=agent.name, tool=name, edit_key=edit_key
        )
    except EditRefused as exc:
        hint = "; shorten the text, or condense the block with memory_rethink" if exc.kind == "limit" else ""
        raise ToolError(f"Edit refused: {exc}{hint}") from None
    except NotFound as exc:
        raise ToolError(str(exc)) from None
    return f"Memory block '{label}' updated ({len(block.value)}/{block.limit} chars)."
