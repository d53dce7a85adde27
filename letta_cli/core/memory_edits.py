"""The edits Letta's memory tools make to a block's value, as pure functions: old value in, new value out.

The memory tools (letta_cli.tools.memory) and `agents blocks append` both use these, inside BlockStore.edit,
so a person and a model editing a block get the same result. A mistake is a ToolError whose text is meant
for a model.
"""

from __future__ import annotations

from letta_cli.core.errors import ToolError
from letta_cli.core.models import Block
from letta_cli.core.text import shorten

QUOTE_CHARS = 200  # how much of a model's text an error quotes back to it


def append(block: Block, content: str) -> str:
    """core_memory_append: the text on a new line (the whole value if the block is empty)."""
    return f"{block.value}\n{content}" if block.value else content


def replace_all(block: Block, old: str, new: str) -> str:
    """core_memory_replace: every occurrence of `old`."""
    if not old:
        raise ToolError("old_content must not be empty")
    if old not in block.value:
        raise ToolError(f"Old content '{shorten(old, QUOTE_CHARS)}' not found in memory block '{block.label}'")
    return block.value.replace(old, new)


def insert(block: Block, text: str, after_line: int = -1) -> str:
    """memory_insert: the text after line `after_line` (0: at the beginning, -1: at the end)."""
    lines = block.value.split("\n") if block.value else []
    at = len(lines) if after_line == -1 else after_line
    if not 0 <= at <= len(lines):
        raise ToolError(
            f"Invalid insert_line {after_line}: use a line number in [0, {len(lines)}], or -1 for the end of the block"
        )
    return "\n".join(lines[:at] + text.split("\n") + lines[at:])


def replace_unique(block: Block, old: str, new: str) -> str:
    """memory_replace: `old` must occur exactly once."""
    if not old:
        raise ToolError("old_string must not be empty")
    quoted = shorten(old, QUOTE_CHARS)
    count = block.value.count(old)
    if count == 0:
        raise ToolError(
            f"No replacement was performed: old_string '{quoted}' does not appear verbatim in "
            f"memory block '{block.label}'"
        )
    if count > 1:
        lines = [i + 1 for i, line in enumerate(block.value.split("\n")) if old in line]
        where = f" (lines {lines})" if lines else ""
        raise ToolError(
            f"No replacement was performed: old_string '{quoted}' occurs {count} times{where} in memory "
            f"block '{block.label}'; include more context so it is unique"
        )
    return block.value.replace(old, new)
