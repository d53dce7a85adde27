"""Letta's Python tools, on explicit trust (`agents import --trust-tools`): a tool's source code and JSON schema
become a command tool that runs the function in a separate Python process.

The code is written, as the file gave it plus a short runner, to tools.d/<name>.py in the workspace, where it
can be read before anything runs; the agent file that lists the tool gets a `[command_tools.<name>]` with
`python = "tools.d/<name>.py"` and the tool's schema. Each call runs that script with the Python that runs
agents, the arguments as JSON on stdin; what the function returns is the result. Nothing here runs the code:
it is only parsed, to check that it defines the function the tool is named after.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from letta_cli.app.agentfile.format import AfTool
from letta_cli.core.errors import Conflict
from letta_cli.core.tool_specs import CommandToolSpec

TOOLS_DIR = "tools.d"
MAX_SOURCE_CHARS = 200_000

HEADER = "# Letta tool {name!r}, imported from {source} with `agents import --trust-tools`.\n# It runs as a command tool: agents.d/ files name it; docs/tools.md.\n\n"
RUNNER = """

if __name__ == "__main__":  # added by agents import: the arguments arrive as JSON on stdin
    import inspect as _inspect
    import json as _json
    import sys as _sys

    _args = _json.load(_sys.stdin)
    if "agent_state" in _inspect.signature({name}).parameters:
        _args.setdefault("agent_state", None)  # Letta passes its agent state; there is none here
    _result = {name}(**_args)
    if _result is not None:
        _sys.stdout.write(_result if isinstance(_result, str) else _json.dumps(_result, default=str))
"""


@dataclass(frozen=True)
class TrustedTool:
    name: str
    path: str  # relative to the workspace
    text: str  # the file's contents
    spec: CommandToolSpec


def trusted_tool(tool: AfTool, source: str) -> TrustedTool | str:
    """The command tool a Letta Python tool becomes, or why it cannot become one."""
    name = tool.name
    if (tool.source_type or "python") != "python":
        return f"{name} (its code is {tool.source_type}, not Python)"
    code = tool.source_code or ""
    if not code.strip():
        return f"{name} (no source code in the file)"
    if not name.isidentifier() or len(name) > 64:
        return f"{name} (not a Python function name)"
    if len(code) > MAX_SOURCE_CHARS:
        return f"{name} (its code is over {MAX_SOURCE_CHARS:,} characters)"
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError, RecursionError):
        return f"{name} (its code does not parse as Python)"
    if not any(isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef) and n.name == name for n in tree.body):
        return f"{name} (its code defines no function {name})"
    if any(isinstance(n, ast.AsyncFunctionDef) and n.name == name for n in tree.body):
        return f"{name} (an async function: not supported)"
    schema: dict[str, Any] = tool.json_schema if isinstance(tool.json_schema, dict) else {}
    parameters = schema.get("parameters", {"type": "object", "properties": {}})
    description = schema.get("description") or tool.description or ""
    try:
        spec = CommandToolSpec(
            description=str(description)[:10_000], python=f"{TOOLS_DIR}/{name}.py", parameters=parameters
        )
    except ValidationError as exc:
        return f"{name} (its JSON schema is not usable: {exc.errors()[0]['msg']})"
    text = HEADER.format(name=name, source=source) + code.rstrip() + "\n" + RUNNER.format(name=name)
    return TrustedTool(name, f"{TOOLS_DIR}/{name}.py", text, spec)


class ToolTrust:
    """What one import makes of an agent file's Python tools: with trust, command tools (their files to
    write, checked against tools.d/ as it is); without, nothing (they stay disabled, as before)."""

    def __init__(self, root: Path, source: str, enabled: bool):
        self.root, self.source, self.enabled = root, source, enabled
        self.files: dict[str, str] = {}  # path relative to the workspace -> contents
        self.taken: dict[str, list[str]] = {}  # our agent name -> the tools it got
        self.untrusted = False  # Python tools were left disabled for want of --trust-tools

    @property
    def names(self) -> set[str]:
        return {n for names in self.taken.values() for n in names}

    def take(self, tool: AfTool, agent: str) -> TrustedTool | str | None:
        """The command tool for an agent's custom tool; a reason it cannot be one; None without trust."""
        if not self.enabled:
            self.untrusted = self.untrusted or bool(tool.source_code)
            return None
        made = trusted_tool(tool, self.source)
        if isinstance(made, str):
            return made
        on_disk = self.root / made.path
        if made.path not in self.files and on_disk.exists():
            try:
                same = on_disk.read_text(encoding="utf-8") == made.text
            except (OSError, UnicodeDecodeError):
                same = False
            if not same:
                raise Conflict(f"{on_disk} exists with other contents; {self.source} not imported")
        self.files[made.path] = made.text
        self.taken.setdefault(agent, []).append(made.name)
        return made

    def warning(self) -> str | None:
        if self.taken:
            listed = "; ".join(f"{agent}: {', '.join(names)}" for agent, names in self.taken.items())
            return (
                f"the file's Python tools were taken as command tools (--trust-tools); their code is in "
                f"{TOOLS_DIR}/ and runs with this Python on each call: {listed}"
            )
        return None
